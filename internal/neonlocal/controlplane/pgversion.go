package controlplane

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/neonguard/neonguard/internal/neonlocal"
)

// The PostgreSQL majors Neon offers, and its default for a project that names none.
const (
	minPGVersion     = 14
	maxPGVersion     = 18
	neonDefaultMajor = 17
)

// servedMajors is what the data plane serves of the majors Neon offers, newest first, and
// everything it serves; restricted is false when it serves any major.
func (s *Server) servedMajors() (offered, installed []int, restricted bool) {
	v, ok := s.dp.(neonlocal.PGVersioner)
	if !ok {
		return nil, nil, false
	}
	installed = v.PGVersions()
	for _, m := range installed {
		if m >= minPGVersion && m <= maxPGVersion {
			offered = append(offered, m)
		}
	}
	return offered, installed, true
}

// DefaultPGVersion is the major of a new project that names none: the newest the data plane
// serves, Neon's default (17) when it serves any, or 0 when it serves none Neon offers.
func (s *Server) DefaultPGVersion() int {
	majors, _, restricted := s.servedMajors()
	switch {
	case !restricted:
		return neonDefaultMajor
	case len(majors) == 0:
		return 0
	}
	return majors[0]
}

// projectPGVersion is the major of a new project: the one asked for (Neon's range), or
// the newest the data plane serves. A data plane that serves only some majors refuses the
// others (400, naming the installed ones) rather than report one major and run another.
func (s *Server) projectPGVersion(asked *int) (int, error) {
	if asked != nil && (*asked < minPGVersion || *asked > maxPGVersion) {
		return 0, errf(http.StatusBadRequest, "pg_version must be between %d and %d", minPGVersion, maxPGVersion)
	}
	majors, installed, restricted := s.servedMajors()
	switch {
	case asked != nil && (!restricted || slices.Contains(majors, *asked)):
		return *asked, nil
	case asked != nil:
		return 0, notServed(*asked, installed)
	case !restricted:
		return neonDefaultMajor, nil
	case len(majors) == 0:
		return 0, notServed(neonDefaultMajor, installed)
	}
	return majors[0], nil
}

func notServed(v int, installed []int) error {
	s := make([]string, len(installed))
	for i, m := range installed {
		s[i] = strconv.Itoa(m)
	}
	return errf(http.StatusBadRequest, "pg_version %d is not available: PostgreSQL %d is not installed on this host (installed: %s; Neon offers %d to %d)",
		v, v, strings.Join(s, ", "), minPGVersion, maxPGVersion)
}
