package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/geodemesh/geode/controlplane/model"
)

// DefaultDebounce is how long a Watcher waits after the last change in the directory
// before it reloads: an editor's save or a ConfigMap update is several events.
const DefaultDebounce = 200 * time.Millisecond

// Watcher reloads the manifests of a directory when it changes: validate, then swap.
type Watcher struct {
	// Dir is the directory of manifests. Required.
	Dir string
	// Apply receives every newly loaded, valid model whose version differs from the last
	// one applied (typically the server's SetModel). When it fails, the error goes to
	// Report and the next change retries. Required.
	Apply func(context.Context, *model.Model) error
	// Report receives load errors (naming file, document and field) and Apply's errors;
	// the last good model stays in place. Nil drops them.
	Report func(error)
	// Current is the model already in service, if any: a reload that yields the same
	// version is not applied again.
	Current *model.Model
	// Debounce: DefaultDebounce when zero.
	Debounce time.Duration
}

// Watch runs a Watcher on dir until ctx is done: apply gets each new valid model,
// report each error.
func Watch(ctx context.Context, dir string, apply func(*model.Model) error, report func(error)) error {
	w := &Watcher{Dir: dir, Apply: func(_ context.Context, m *model.Model) error { return apply(m) }, Report: report}
	return w.Run(ctx)
}

// Run watches Dir until ctx is done, and returns nil then. It loads the directory once
// right after the watch is set up, so that a change made before Run is not missed. If
// the directory itself goes away, Run reports it and watches for it to come back (once a
// second), keeping the last good model meanwhile. It returns an error only when the
// watch cannot be set up at all.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Dir == "" || w.Apply == nil {
		return errors.New("source: Watcher needs Dir and Apply")
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	report := w.Report
	if report == nil {
		report = func(error) {}
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", w.Dir, err)
	}
	defer fw.Close()
	dir := filepath.Clean(w.Dir)
	if err := fw.Add(dir); err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	watching := true
	lastVersion := ""
	if w.Current != nil {
		lastVersion = w.Current.Version()
	}

	reload := func() {
		m, err := Load(dir)
		if err != nil {
			report(fmt.Errorf("manifests not reloaded, the last good model stays: %w", err))
			return
		}
		if m.Version() == lastVersion {
			return
		}
		if err := w.Apply(ctx, m); err != nil {
			report(fmt.Errorf("model %s from %s not applied, the last good model stays: %w", m.Version(), dir, err))
			return
		}
		lastVersion = m.Version()
	}

	timer := time.NewTimer(debounce)
	defer timer.Stop()
	// retry re-adds the watch on the directory after it went away.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if filepath.Clean(ev.Name) == dir && ev.Op&(fsnotify.Remove|fsnotify.Rename) != 0 {
				watching = false
				_ = fw.Remove(dir)
				report(fmt.Errorf("manifest directory %s was removed or renamed; keeping the last good model until it is back", dir))
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			report(fmt.Errorf("watching %s: %w (reloading to catch up)", dir, err))
			timer.Reset(debounce)
		case <-retry.C:
			if watching {
				continue
			}
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				continue
			}
			if err := fw.Add(dir); err != nil {
				continue
			}
			watching = true
			timer.Reset(debounce)
		case <-timer.C:
			if watching {
				reload()
			}
		}
	}
}
