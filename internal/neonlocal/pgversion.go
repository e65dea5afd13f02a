package neonlocal

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The PostgreSQL majors Neon offers, and its default for a project that names none.
const (
	minPGVersion     = 14
	maxPGVersion     = 18
	neonDefaultMajor = 17
)

// PGVersioner is implemented by a data plane that serves only some PostgreSQL majors (the
// ones installed on the host). The emulator then refuses a project of another major with 400,
// rather than report one major and run another, and a project that names none gets the newest
// it serves instead of Neon's default.
type PGVersioner interface {
	// PGVersions lists the majors served, newest first.
	PGVersions() []int
}

// servedMajors is what the data plane serves of the majors Neon offers, newest first, and
// everything it serves; restricted is false when it serves any major.
func (s *Server) servedMajors() (offered, installed []int, restricted bool) {
	v, ok := s.dp.(PGVersioner)
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

// servedPGVersion wraps project creation when the data plane serves only some majors: a
// request for a major it lacks is refused (400) with the ones it has, and a request naming
// none is given the newest. Anything else about the body is left to next.
func (s *Server) servedPGVersion(next handler) handler {
	return func(r *http.Request, p principal) (int, any, error) {
		majors, installed, restricted := s.servedMajors()
		if !restricted || r.Body == nil {
			return next(r, p)
		}
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
		if err != nil {
			return 0, nil, errf(http.StatusBadRequest, "invalid request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req map[string]json.RawMessage
		if json.Unmarshal(body, &req) != nil {
			return next(r, p) // next reports the malformed body
		}
		var prj map[string]json.RawMessage
		if json.Unmarshal(req["project"], &prj) != nil || prj == nil {
			return next(r, p)
		}
		raw, named := prj["pg_version"]
		if named && string(raw) != "null" {
			var v int
			if json.Unmarshal(raw, &v) != nil || v < minPGVersion || v > maxPGVersion || slices.Contains(majors, v) {
				return next(r, p) // next checks the type and Neon's range
			}
			return 0, nil, notServed(v, installed)
		}
		if len(majors) == 0 {
			return 0, nil, notServed(neonDefaultMajor, installed)
		}
		prj["pg_version"] = json.RawMessage(strconv.Itoa(majors[0]))
		if req["project"], err = json.Marshal(prj); err != nil {
			return 0, nil, err
		}
		if body, err = json.Marshal(req); err != nil {
			return 0, nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		return next(r, p)
	}
}

func notServed(v int, installed []int) error {
	s := make([]string, len(installed))
	for i, m := range installed {
		s[i] = strconv.Itoa(m)
	}
	return errf(http.StatusBadRequest, "pg_version %d is not available: PostgreSQL %d is not installed on this host (installed: %s; Neon offers %d to %d)",
		v, v, strings.Join(s, ", "), minPGVersion, maxPGVersion)
}
