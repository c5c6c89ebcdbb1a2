// Package quantity parses Kubernetes resource quantities ("128Mi", "500m",
// "0.5", "1e3") as OpenFaaS stack files use them for limits and requests.
package quantity

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid quantity")

var suffixes = []struct {
	s string
	v *big.Rat
}{
	// Two-letter suffixes first so "Mi" is not read as "M".
	{"Ki", pow(2, 10)}, {"Mi", pow(2, 20)}, {"Gi", pow(2, 30)}, {"Ti", pow(2, 40)}, {"Pi", pow(2, 50)}, {"Ei", pow(2, 60)},
	{"n", frac(1, 1e9)}, {"u", frac(1, 1e6)}, {"m", frac(1, 1e3)},
	{"k", pow(10, 3)}, {"M", pow(10, 6)}, {"G", pow(10, 9)}, {"T", pow(10, 12)}, {"P", pow(10, 15)}, {"E", pow(10, 18)},
}

func pow(base, exp int64) *big.Rat {
	return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil))
}

func frac(a, b int64) *big.Rat { return big.NewRat(a, b) }

// parse returns the exact value of s.
func parse(s string) (*big.Rat, error) {
	if s == "" || strings.TrimSpace(s) != s {
		return nil, fmt.Errorf("%w %q", ErrInvalid, s)
	}
	num, mult := s, big.NewRat(1, 1)
	for _, sf := range suffixes {
		if strings.HasSuffix(s, sf.s) {
			num, mult = strings.TrimSuffix(s, sf.s), sf.v
			break
		}
	}
	if num == "" || strings.ContainsAny(num, "+-") && !strings.ContainsAny(num, "eE") {
		return nil, fmt.Errorf("%w %q: want a non-negative number with an optional suffix such as Mi or m", ErrInvalid, s)
	}
	// big.Rat would expand "1e1000000" digit by digit; no resource needs
	// an exponent beyond a few dozen.
	if i := strings.IndexAny(num, "eE"); i >= 0 {
		if e, err := strconv.Atoi(num[i+1:]); err != nil || e > 30 || e < -30 {
			return nil, fmt.Errorf("%w %q: exponent out of range", ErrInvalid, s)
		}
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok || v.Sign() < 0 {
		return nil, fmt.Errorf("%w %q: want a non-negative number with an optional suffix such as Mi or m", ErrInvalid, s)
	}
	return v.Mul(v, mult), nil
}

// ParseBytes parses a memory quantity into bytes, rounding up.
func ParseBytes(s string) (int64, error) {
	v, err := parse(s)
	if err != nil {
		return 0, err
	}
	return ceil(v, s)
}

// ParseMilliCPU parses a CPU quantity into thousandths of a CPU, rounding up.
func ParseMilliCPU(s string) (int64, error) {
	v, err := parse(s)
	if err != nil {
		return 0, err
	}
	return ceil(v.Mul(v, big.NewRat(1000, 1)), s)
}

func ceil(v *big.Rat, s string) (int64, error) {
	q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() || q.Int64() > 1<<53 {
		return 0, fmt.Errorf("%w %q: too large", ErrInvalid, s)
	}
	return q.Int64(), nil
}
