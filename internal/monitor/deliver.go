package monitor

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/neonguard/neonguard/internal/store"
)

// Webhook request headers.
const (
	HeaderSignature = "X-Neonguard-Signature" // "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body)
	HeaderDelivery  = "X-Neonguard-Delivery"  // the alert id: the same on every retry
	HeaderTimestamp = "X-Neonguard-Timestamp" // unix seconds when this attempt was sent
)

// Sign returns the X-Neonguard-Signature value of body sent at timestamp (unix seconds). The
// timestamp is signed with the body, so a captured request cannot be replayed later under a
// fresh timestamp: receivers check both (Verify).
func Sign(secret string, timestamp int64, body []byte) string {
	return "sha256=" + hex.EncodeToString(signature(secret, strconv.FormatInt(timestamp, 10), body))
}

func signature(secret, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// ErrBadSignature is Verify's answer to a missing or wrong signature, or a stale timestamp.
var ErrBadSignature = errors.New("monitor: webhook signature does not match")

// Verify checks a webhook body against its X-Neonguard-Signature and X-Neonguard-Timestamp
// headers, in constant time, and that the timestamp is within tolerance of now (tolerance <= 0
// skips that check; 5 minutes is a sensible value). Receivers call it with the raw body,
// before decoding it, and deduplicate on X-Neonguard-Delivery.
func Verify(secret string, body []byte, signatureHeader, timestampHeader string, now time.Time, tolerance time.Duration) error {
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(signatureHeader), "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return ErrBadSignature
	}
	ts := strings.TrimSpace(timestampHeader)
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if !hmac.Equal(got, signature(secret, ts, body)) {
		return ErrBadSignature
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sent, 0)); d > tolerance || d < -tolerance {
			return fmt.Errorf("%w: timestamp %s is outside the %s tolerance", ErrBadSignature, ts, tolerance)
		}
	}
	return nil
}

// Deliver sends the due deliveries once (up to a batch) and returns how many it claimed.
// Each one ends delivered (2xx) or due again after a backoff that grows with its attempts;
// both are recorded in the store, so a restart continues where this one stopped.
func (m *Monitor) Deliver(ctx context.Context) (int, error) {
	if m.cfg.WebhookURL == "" {
		return 0, nil
	}
	claimed := m.clock.Now()
	ds, err := m.cfg.Store.ClaimDeliveries(ctx, m.cfg.Owner, claimed, m.cfg.Lease, deliveryBatch)
	if err != nil {
		return len(ds), errorf("%w", err)
	}
	// A slow receiver can make a batch outlast its lease; a row whose lease could end while it
	// is being sent is left for later (due again when the lease ends), so another replica that
	// claims it then never sends it alongside this one.
	sendBy := claimed.Add(m.cfg.Lease - defaultSendTimeout)
	var errs []error
	for _, d := range ds {
		if m.clock.Now().After(sendBy) {
			break
		}
		if err := m.deliverOne(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return len(ds), errors.Join(errs...)
}

func (m *Monitor) deliverOne(ctx context.Context, d store.Delivery) error {
	sendErr := m.send(ctx, d)
	if sendErr == nil {
		if err := m.cfg.Store.DeliverySucceeded(ctx, d.AlertID, m.cfg.Owner, m.clock.Now()); err != nil {
			// The receiver has it; if the row stays undelivered it is sent again, and the
			// receiver deduplicates on X-Neonguard-Delivery.
			return errorf("alert %s delivered, but recording it failed: %w", d.AlertID, err)
		}
		m.log.Info("usage alert delivered", "alert_id", d.AlertID, "attempts", d.Attempts+1)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease runs out and the row is due again
	}
	attempts := d.Attempts + 1
	next := m.clock.Now().Add(m.backoff(attempts))
	m.log.Warn("usage alert delivery failed; will retry", "alert_id", d.AlertID, "attempts", attempts,
		"next_attempt_at", next, "err", sendErr)
	if err := m.cfg.Store.DeliveryFailed(ctx, d.AlertID, m.cfg.Owner, sendErr.Error(), next); err != nil {
		return errorf("alert %s: recording a failed delivery: %w", d.AlertID, err)
	}
	return nil
}

// send POSTs one delivery. Its errors never contain the URL (which may carry a token) or
// the secret.
func (m *Monitor) send(ctx context.Context, d store.Delivery) error {
	ctx, cancel := context.WithTimeout(ctx, defaultSendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.WebhookURL, bytes.NewReader(d.Payload))
	if err != nil {
		return errors.New("webhook: bad request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "neonguard-monitor")
	req.Header.Set(HeaderDelivery, d.AlertID)
	sent := m.clock.Now().Unix()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(sent, 10))
	if m.cfg.WebhookSecret != "" {
		req.Header.Set(HeaderSignature, Sign(m.cfg.WebhookSecret, sent, d.Payload))
	}
	res, err := m.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("webhook: HTTP %d", res.StatusCode)
	}
	return nil
}

// backoff is exponential from 5s, capped at 1h, with jitter in its upper half: the n-th
// failed attempt waits in [min(1h, 5s·2^(n-1))/2, min(1h, 5s·2^(n-1))], never under 5s.
func (m *Monitor) backoff(n int) time.Duration {
	d := maxBackoff
	if n-1 < 20 {
		d = min(maxBackoff, minBackoff<<(n-1))
	}
	j := d/2 + time.Duration(m.random()*float64(d/2))
	return max(minBackoff, j)
}
