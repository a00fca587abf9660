package xds

import "context"

// receive calls recv on a goroutine of its own, handing each message over on msgs, until
// recv fails (the error goes to errc, which holds one) or ctx ends. wait returns once the
// goroutine has stopped: cancel ctx first, or the stream's Recv may not return.
func receive[T any](ctx context.Context, recv func() (T, error)) (msgs <-chan T, errc <-chan error, wait func()) {
	out := make(chan T)
	errs := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := recv()
			if err != nil {
				errs <- err
				return
			}
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errs, func() { <-done }
}
