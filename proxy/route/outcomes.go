package route

import "sync/atomic"

// Outcome is what one (service, region) did since it was last read: attempts that the
// region answered (Success) and attempts that failed because of it (Failure).
type Outcome struct {
	Success, Failure uint64
}

// Outcomes counts the attempt outcomes of one (service, region) for the control
// plane's region health reports. It is owned by the Registry, so counts survive a
// routing-state swap; counting is an atomic add and never allocates.
type Outcomes struct {
	success, failure atomic.Uint64
}

// Success records an attempt the region answered: a usable response, or a 421 from a
// replica that is only behind (not a failure of the region).
func (o *Outcomes) Success() { o.success.Add(1) }

// Failure records an attempt that failed because of the region: a 502/503/504 or a
// peer that could not reach its app, a refused connection, a transport error or a
// timeout. A client that went away is not recorded at all.
func (o *Outcomes) Failure() { o.failure.Add(1) }

// take returns the counts and resets them.
func (o *Outcomes) take() Outcome {
	return Outcome{Success: o.success.Swap(0), Failure: o.failure.Swap(0)}
}

func (r *Registry) outcomes(service, region string, live liveSet) *Outcomes {
	key := "o/" + service + "/" + region
	live[key] = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.counters[key]; ok {
		return o.o
	}
	o := &keyedOutcomes{service: service, region: region, o: &Outcomes{}}
	r.counters[key] = o
	return o.o
}

type keyedOutcomes struct {
	service, region string
	o               *Outcomes
}

// TakeOutcomes returns the attempt outcomes counted since the previous call, by
// service and region, and resets them. (service, region) pairs with nothing counted
// are left out; the result is nil when nothing was counted. Counts of a pair that a
// swap removed are dropped with it.
func (r *Registry) TakeOutcomes() map[string]map[string]Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out map[string]map[string]Outcome
	for _, k := range r.counters {
		o := k.o.take()
		if o == (Outcome{}) {
			continue
		}
		if out == nil {
			out = map[string]map[string]Outcome{}
		}
		if out[k.service] == nil {
			out[k.service] = map[string]Outcome{}
		}
		out[k.service][k.region] = o
	}
	return out
}
