package api

import (
	"context"
	"errors"
	"net/netip"

	"github.com/openfaas/faas-provider/types"

	"github.com/dockerfaasd/dockerfaasd/pkg/store"
)

// AnnotationAddress is the annotation list and describe add to a function
// with a dedicated address (FUNCTION_CIDR): the URL it is served on,
// http://ADDRESS[:PORT]/. It is added to what is returned, never stored in
// the spec.
const AnnotationAddress = "io.dockerfaas.address"

// addressURL is the URL a function's dedicated address is served on; the
// port is left out when it is HTTP's own.
func addressURL(addr netip.Addr, port int) string {
	if port == 80 {
		return "http://" + addr.String() + "/"
	}
	return "http://" + netip.AddrPortFrom(addr, uint16(port)).String() + "/"
}

// addressOf reads the dedicated address of the function key from the store;
// the zero Addr when it has none or the feature is off. A failed read only
// leaves the annotation out: describe must answer anyway.
func (a *api) addressOf(ctx context.Context, key string) netip.Addr {
	if a.addressPort == 0 {
		return netip.Addr{}
	}
	rec, err := a.store.GetAddress(ctx, key)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.log.WithError(err).WithField("function", key).Warn("cannot read the function's address")
		}
		return netip.Addr{}
	}
	return rec.Address
}

// addressesOf reads every dedicated address, by function key, for the list;
// nil when the feature is off or the read failed.
func (a *api) addressesOf(ctx context.Context) map[string]netip.Addr {
	if a.addressPort == 0 {
		return nil
	}
	list, err := a.store.ListAddresses(ctx)
	if err != nil {
		a.log.WithError(err).Warn("cannot read the functions' addresses")
		return nil
	}
	out := make(map[string]netip.Addr, len(list))
	for _, rec := range list {
		out[rec.Key] = rec.Address
	}
	return out
}

// withAddress adds addr's URL to st's annotations, in a copy: st's map is
// the stored spec's.
func (a *api) withAddress(st *types.FunctionStatus, addr netip.Addr) {
	if !addr.IsValid() {
		return
	}
	out := map[string]string{AnnotationAddress: addressURL(addr, a.addressPort)}
	if st.Annotations != nil {
		for k, v := range *st.Annotations {
			if k != AnnotationAddress {
				out[k] = v
			}
		}
	}
	st.Annotations = &out
}
