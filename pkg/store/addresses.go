package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrAddressesExhausted means every usable address of the CIDR is taken by
// another function.
var ErrAddressesExhausted = errors.New("no free address left in the CIDR")

// AddressAllocation is the dedicated address of one function (FUNCTION_CIDR):
// the daemon serves the function on it, and the API shows it.
type AddressAllocation struct {
	// Key is the function's store key, "namespace/name".
	Key string `json:"key"`
	// Address is an IPv4 address of the CIDR it was allocated from.
	Address     netip.Addr `json:"address"`
	AllocatedAt time.Time  `json:"allocatedAt"`
}

// Addresses keeps the allocation of dedicated addresses to functions, at
// most one per function and never one address to two functions. Writes wake
// no watcher: an address is bookkeeping of the listener that serves it, no
// change of desired state the controller acts on.
type Addresses interface {
	// AllocateAddress returns the function's address in prefix (an IPv4
	// CIDR with at least two usable addresses). It is idempotent: a function
	// keeps the address it has while that lies in prefix; otherwise it gets
	// the lowest free one, never the network or broadcast address. It fails
	// with ErrNotFound when the function does not exist (checked in the
	// same write, so no address outlives a concurrent delete) and with
	// ErrAddressesExhausted when prefix is full.
	AllocateAddress(ctx context.Context, key string, prefix netip.Prefix) (netip.Addr, error)
	// GetAddress returns the function's allocation or an error wrapping
	// ErrNotFound.
	GetAddress(ctx context.Context, key string) (AddressAllocation, error)
	// ReleaseAddress frees the function's address; releasing none is no
	// error, so it may be repeated.
	ReleaseAddress(ctx context.Context, key string) error
	// ListAddresses returns every allocation, sorted by key.
	ListAddresses(ctx context.Context) ([]AddressAllocation, error)
}

// addressRecords is the addresses bucket: one AddressAllocation per
// function key. No revisions, no watch keys.
var addressRecords = &bucket[AddressAllocation]{
	name: []byte("addresses"),
	kind: "address of function",
	key:  func(a AddressAllocation) string { return a.Key },
}

// UsableAddresses returns the first and last address of prefix that can be
// given to a function (all but the network and broadcast addresses), or an
// error when prefix is not IPv4 or leaves fewer than two.
func UsableAddresses(prefix netip.Prefix) (first, last netip.Addr, err error) {
	switch {
	case !prefix.IsValid():
		return first, last, errors.New("invalid CIDR")
	case !prefix.Addr().Is4():
		return first, last, fmt.Errorf("CIDR %s: want IPv4", prefix)
	case prefix.Bits() > 30:
		return first, last, fmt.Errorf("CIDR %s leaves fewer than 2 usable addresses (want /30 or wider)", prefix)
	}
	p := prefix.Masked()
	network := addrUint(p.Addr())
	broadcast := network | (1<<(32-p.Bits()) - 1)
	return uintAddr(network + 1), uintAddr(broadcast - 1), nil
}

func addrUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintAddr(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// AllocateAddress implements Addresses.
func (e *engine) AllocateAddress(ctx context.Context, key string, prefix netip.Prefix) (netip.Addr, error) {
	about := addressRecords.about(key)
	first, last, err := UsableAddresses(prefix)
	if err != nil {
		return netip.Addr{}, about.wrap(err)
	}
	return write(ctx, e, about, func(tx *txn) (netip.Addr, error) {
		if !functionRecords.exists(tx, key) {
			return netip.Addr{}, functionRecords.about(key).wrap(ErrNotFound)
		}
		// One pass over the allocations: this function's own, and the
		// addresses of the others inside the usable range.
		var (
			mine  netip.Addr
			taken = make(map[uint32]bool)
			bad   error
		)
		lo, hi := addrUint(first), addrUint(last)
		tx.kv.bucket(addressRecords.name).scan(nil, func(k, v []byte) bool {
			rec, err := addressRecords.decode(string(k), v)
			if err != nil {
				bad = err
				return false
			}
			if string(k) == key {
				mine = rec.Address
				return true
			}
			if rec.Address.Is4() {
				if n := addrUint(rec.Address); n >= lo && n <= hi {
					taken[n] = true
				}
			}
			return true
		})
		if bad != nil {
			return netip.Addr{}, bad
		}
		if mine.Is4() {
			if n := addrUint(mine); n >= lo && n <= hi && !taken[n] {
				return mine, nil // kept: nothing written
			}
		}
		for n := lo; ; n++ {
			if !taken[n] {
				rec := AddressAllocation{Key: key, Address: uintAddr(n), AllocatedAt: now()}
				if _, err := addressRecords.save(tx, key, rec); err != nil {
					return netip.Addr{}, err
				}
				return rec.Address, nil
			}
			if n == hi {
				return netip.Addr{}, about.wrap(fmt.Errorf("%s: %w", prefix.Masked(), ErrAddressesExhausted))
			}
		}
	})
}

// GetAddress implements Addresses.
func (e *engine) GetAddress(ctx context.Context, key string) (AddressAllocation, error) {
	var a AddressAllocation
	err := e.read(ctx, addressRecords.about(key), func(tx *txn) (err error) {
		a, err = addressRecords.get(tx, key)
		return err
	})
	return a, err
}

// ReleaseAddress implements Addresses.
func (e *engine) ReleaseAddress(ctx context.Context, key string) error {
	_, err := write(ctx, e, addressRecords.about(key), func(tx *txn) (struct{}, error) {
		if !addressRecords.exists(tx, key) {
			return struct{}{}, nil // nothing written: no commit
		}
		return struct{}{}, addressRecords.delete(tx, key)
	})
	return err
}

// ListAddresses implements Addresses.
func (e *engine) ListAddresses(ctx context.Context) ([]AddressAllocation, error) {
	return listIn(ctx, e, subject{what: "list addresses", bare: true}, addressRecords, nil)
}
