package console

import (
	"context"
	"reflect"
	"strconv"
	"sync/atomic"

	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/ctim"
)

// Identical investigations in flight share one module call (Console.calls).
//
// A phishing campaign makes a SOAR playbook, or several analysts, enrich the
// same observable for many alerts at once. An observe, deliberate or refer
// call is therefore shared with every identical call that is in flight at
// the same time: same console, organisation, module instance (as built from
// its current settings), operation and observables. Nothing is kept after
// the call completes: the next identical call calls the module again.
//
// The observables are compared in the order given, type and value. They
// are already in normal form and without duplicates (parseObservables,
// sightingObservables and investigate see to that); their order is kept
// because a module's answer may follow it (the order of its documents), and
// a sharer must get exactly the answer it would have got alone.
//
// The shared call runs under context.WithoutCancel of the context of the
// caller that started it, through callOne, as each call of fanOut does:
// bounded by the instance's timeout from its start, a late answer dropped,
// a panic a failure of that call alone, exactly as for an unshared call.
// Each caller waits under its own context, so a caller that goes away, or
// whose own deadline passes, gets its error alone while the call goes on
// for the others; a caller that joined late gets the shared call's
// timeout, if it has one, as soon as the call does. The outcome (data,
// module errors or transport error) is the same value for every sharer,
// who adds its own module ids as for an unshared call. It must therefore be read
// only: checkData copies the data before it drops a verdict, appendErrors
// and errorOf copy the errors, writeEnvelope and encoding/json only read,
// and the UI's mergeData builds a new map.

// sharedModule is a target's module whose observe, deliberate and refer
// calls are shared with the identical calls in flight; its other methods
// are the module's own.
type sharedModule struct {
	module.Module
	c     *Console
	orgID string
	t     target // with the module itself
}

// shared returns ts with each built module wrapped in a sharedModule of
// organisation orgID.
func (c *Console) shared(orgID string, ts []target) []target {
	out := make([]target, len(ts))
	for i, t := range ts {
		if t.buildErr == nil {
			t.mod = sharedModule{Module: t.mod, c: c, orgID: orgID, t: t}
		}
		out[i] = t
	}
	return out
}

func (m sharedModule) Observe(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	return shareAs(ctx, m, opObserve, obs, module.Module.Observe)
}

func (m sharedModule) Deliberate(ctx context.Context, obs []ctim.Observable) (module.Data, []module.Error, error) {
	return shareAs(ctx, m, opDeliberate, obs, module.Module.Deliberate)
}

func (m sharedModule) Refer(ctx context.Context, obs []ctim.Observable) ([]module.Reference, []module.Error, error) {
	return shareAs(ctx, m, opRefer, obs, module.Module.Refer)
}

// shareAs is m.share of the module method f, whose answer is a T.
func shareAs[T any](ctx context.Context, m sharedModule, op string, obs []ctim.Observable,
	f func(module.Module, context.Context, []ctim.Observable) (T, []module.Error, error)) (T, []module.Error, error) {
	o := m.share(ctx, op, obs, func(ctx context.Context, mod module.Module) (o outcome) {
		o.value, o.errs, o.err = f(mod, ctx, obs)
		return o
	})
	v, _ := o.value.(T)
	return v, o.errs, o.err
}

// shareHook, when set (by tests), is called with the instance id and the
// operation each time a caller has joined or started a shared call.
var shareHook atomic.Pointer[func(instanceID, op string)]

// share returns the outcome of call on the module: the outcome of the
// identical call in flight, or of a new one that later identical callers
// join. It waits at most until ctx is done; the call itself goes on.
func (m sharedModule) share(ctx context.Context, op string, obs []ctim.Observable,
	call func(context.Context, module.Module) outcome) outcome {
	detached := context.WithoutCancel(ctx)
	ch := m.c.calls.DoChan(m.key(op, obs), func() (any, error) {
		return m.c.callOne(detached, m.t, call), nil
	})
	if h := shareHook.Load(); h != nil {
		(*h)(m.t.InstanceID, op)
	}
	select {
	case r := <-ch:
		return r.Val.(outcome)
	case <-ctx.Done():
		return outcome{err: ctx.Err()}
	}
}

// key identifies a call: the module by its address (which no other value
// can have while the call is in flight, since the call holds it), the
// organisation, the instance, the operation and the observables, each
// string preceded by its length.
func (m sharedModule) key(op string, obs []ctim.Observable) string {
	b := make([]byte, 0, 128)
	b = strconv.AppendUint(b, uint64(moduleAddress(m.t.mod)), 16)
	for _, s := range []string{m.orgID, m.t.InstanceID, op} {
		b = appendField(b, s)
	}
	for _, o := range obs {
		b = appendField(appendField(b, string(o.Type)), o.Value)
	}
	return string(b)
}

func appendField(b []byte, s string) []byte {
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// moduleAddress is the address of a module that is a pointer, or 0: a
// module rebuilt because its instance changed is a new pointer, so a call
// started before the change is not shared with one after it. Modules that
// are values (Private Intelligence, test fakes) are told apart by the rest
// of the key.
func moduleAddress(mod module.Module) uintptr {
	if v := reflect.ValueOf(mod); v.Kind() == reflect.Pointer {
		return v.Pointer()
	}
	return 0
}
