package dataplane

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/neonguard/neonguard/internal/neonlocal"
	"github.com/neonguard/neonguard/internal/neonlocal/proxy"
)

// endpoint is a compute: its stable port (a proxy) in front of its branch's cluster. The
// branch can change (a finalized snapshot restore moves the endpoint); the port cannot.
type endpoint struct {
	dp        *DataPlane
	id        string
	projectID string

	mu       sync.Mutex
	branchID string
	px       *proxy.Proxy
	refuse   error
}

var _ proxy.Backend = (*endpoint)(nil)

func (e *endpoint) cluster() *cluster {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dp.cluster(e.projectID, e.branchID)
}

// Start is the proxy waking the compute.
func (e *endpoint) Start(ctx context.Context) (string, error) {
	p, err := e.cluster().want(ctx)
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p.Port), nil
}

// Stop is the proxy suspending the compute.
func (e *endpoint) Stop(ctx context.Context) error { return e.cluster().unwant(ctx) }

func (e *endpoint) refused() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refuse
}

func (e *endpoint) suspend(ctx context.Context) error {
	e.mu.Lock()
	px := e.px
	e.mu.Unlock()
	if px == nil {
		return nil
	}
	return px.Suspend(ctx)
}

// warm starts the cluster in the background so the next connection does not wait for it.
func (e *endpoint) warm() {
	c := e.cluster()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.hold(ctx); err == nil {
			c.release()
		}
	}()
}

func (e *endpoint) close() error {
	e.mu.Lock()
	px := e.px
	e.px = nil
	e.mu.Unlock()
	if px == nil {
		return nil
	}
	return px.Close()
}

func (dp *DataPlane) endpointsOf(branchID string) []*endpoint {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	var out []*endpoint
	for _, e := range dp.endpoints {
		e.mu.Lock()
		if e.branchID == branchID {
			out = append(out, e)
		}
		e.mu.Unlock()
	}
	return out
}

// attach makes sure the endpoint's proxy listens on its port and points at its branch.
func (dp *DataPlane) attach(ctx context.Context, spec neonlocal.EndpointSpec) (*endpoint, error) {
	dp.mu.Lock()
	if dp.closed {
		dp.mu.Unlock()
		return nil, fmt.Errorf("data plane closed")
	}
	e, ok := dp.endpoints[spec.EndpointID]
	if !ok {
		e = &endpoint{dp: dp, id: spec.EndpointID, projectID: spec.ProjectID}
		dp.endpoints[spec.EndpointID] = e
	}
	dp.mu.Unlock()

	// A move to another branch (a finalized snapshot restore) first drops the old branch's
	// connections; the proxy's Stop then releases the old cluster.
	e.mu.Lock()
	old, px := e.branchID, e.px
	e.mu.Unlock()
	if px != nil && old != "" && old != spec.BranchID {
		if err := px.Suspend(ctx); err != nil {
			return nil, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.branchID = spec.BranchID
	if e.px != nil {
		return e, nil
	}
	idle := spec.SuspendTimeout
	switch {
	case idle == 0:
		idle = dp.o.DefaultSuspendTimeout
	case idle < 0:
		idle = 0 // never
	}
	px, err := proxy.Listen(ctx, proxy.Options{
		Listen: "127.0.0.1:" + strconv.Itoa(spec.Port), Backend: e, IdleTimeout: idle,
		Logger: dp.log.With("endpoint", spec.EndpointID), Refuse: e.refused, TLS: dp.tls,
	})
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", spec.EndpointID, err)
	}
	e.px = px
	return e, nil
}

// StartEndpoint listens on the endpoint's port and starts its compute.
func (dp *DataPlane) StartEndpoint(ctx context.Context, spec neonlocal.EndpointSpec) error {
	e, err := dp.attach(ctx, spec)
	if err != nil {
		return err
	}
	e.warm()
	return nil
}

// SuspendEndpoint stops the endpoint's compute; its port stays, and the next connection
// starts it again.
func (dp *DataPlane) SuspendEndpoint(ctx context.Context, spec neonlocal.EndpointSpec) error {
	dp.mu.Lock()
	e, ok := dp.endpoints[spec.EndpointID]
	dp.mu.Unlock()
	if !ok {
		return nil
	}
	return e.suspend(ctx)
}

// EndpointActive reports whether an endpoint's compute runs now (known=false for an endpoint
// the data plane does not serve): the control plane shows it as the endpoint's state, since
// computes suspend themselves when idle.
func (dp *DataPlane) EndpointActive(endpointID string) (active, known bool) {
	dp.mu.Lock()
	e, ok := dp.endpoints[endpointID]
	dp.mu.Unlock()
	if !ok {
		return false, false
	}
	e.mu.Lock()
	px, branchID := e.px, e.branchID
	e.mu.Unlock()
	if px == nil {
		return false, false
	}
	if px.Running() {
		return true, true
	}
	// Never wait on a cluster busy starting or stopping (the control plane asks under its
	// own lock): busy counts as active.
	c := dp.cluster(e.projectID, branchID)
	if !c.mu.TryLock() {
		return true, true
	}
	defer c.mu.Unlock()
	return c.proc != nil, true
}
