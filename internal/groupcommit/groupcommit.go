// Package groupcommit hands a request to a journal's single writer,
// which commits the requests waiting in groups (one fsync each), and
// waits for the outcome.
package groupcommit

import "context"

// Submit sends r on reqs and waits until the writer closes done (it then
// has set r's outcome). It returns errClosed when the journal closed
// (closing is closed) before the writer took r, or the writer stopped
// (exited is closed) without taking it, and ctx's error when ctx ended
// before r was handed over. Once handed over, it waits for the commit
// even if ctx ends, so the caller never answers before knowing whether
// the batch was kept.
func Submit[R any](ctx context.Context, reqs chan<- R, r R, done, closing, exited <-chan struct{}, errClosed error) error {
	select {
	case reqs <- r:
	case <-closing:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
	case <-exited:
		select {
		case <-done:
		default:
			return errClosed // the writer stopped before taking r
		}
	}
	return nil
}
