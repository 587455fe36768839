package kernel

import (
	"fmt"
	"strings"
)

// The kernel loads crypto code on demand: an algorithm nobody has
// registered yet makes the crypto API call modprobe with "crypto-NAME" for
// the algorithm and for each template it is built from ("xts(aes)" asks
// for crypto-xts and crypto-aes), and the crypto modules declare those
// names as aliases. No dependency file records which algorithms a driver
// will ask for, because the user chooses them at run time (a LUKS header
// names its cipher); these functions turn such a choice into the names
// the kernel will request, for Closure to resolve through the aliases.

// CryptoRequests returns the module names the kernel's crypto API asks
// for to instantiate alg, an algorithm expression such as "xts(aes)" or
// "essiv(cbc(aes),sha256)": "crypto-" and each template's and algorithm's
// name, outermost first, each once.
func CryptoRequests(alg string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var walk func(expr string) error
	walk = func(expr string) error {
		name, args, hasArgs := strings.Cut(expr, "(")
		if name == "" || strings.ContainsAny(name, "), ") {
			return fmt.Errorf("kernel: crypto algorithm %q: bad name in %q", alg, expr)
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, "crypto-"+name)
		}
		if !hasArgs {
			return nil
		}
		inner, ok := strings.CutSuffix(args, ")")
		if !ok {
			return fmt.Errorf("kernel: crypto algorithm %q: unbalanced parentheses", alg)
		}
		parts, err := splitArgs(inner)
		if err != nil {
			return fmt.Errorf("kernel: crypto algorithm %q: %w", alg, err)
		}
		for _, p := range parts {
			if err := walk(p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(strings.TrimSpace(alg)); err != nil {
		return nil, err
	}
	return out, nil
}

// splitArgs splits a template's arguments at the commas outside
// parentheses: "cbc(aes),sha256" gives "cbc(aes)" and "sha256".
func splitArgs(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses")
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	return append(parts, s[start:]), nil
}

// DMCryptAlgorithm returns the crypto API algorithm dm-crypt allocates for
// a cipher specification as a dm-crypt table (and a LUKS header) gives it:
// "aes-xts-plain64" is "xts(aes)", "aes-cbc-essiv:sha256" is
// "essiv(cbc(aes),sha256)", and "capi:xts(aes)-plain64" names it outright.
// It follows drivers/md/dm-crypt.c (crypt_ctr_cipher_old and _new) of
// Linux 6.1.
func DMCryptAlgorithm(spec string) (string, error) {
	if rest, ok := strings.CutPrefix(spec, "capi:"); ok {
		alg := rest // the IV mode, if any, follows the last '-'
		if i := strings.LastIndexByte(rest, '-'); i >= 0 {
			alg = rest[:i]
		}
		if alg == "" {
			return "", fmt.Errorf("kernel: dm-crypt cipher %q: no algorithm after \"capi:\"", spec)
		}
		return alg, nil
	}
	f := strings.SplitN(spec, "-", 3)
	cipher := f[0]
	if cipher == "" || strings.ContainsAny(cipher, "(),:") {
		return "", fmt.Errorf("kernel: dm-crypt cipher %q: want CIPHER-CHAINMODE-IVMODE, e.g. aes-xts-plain64", spec)
	}
	chain, iv := "cbc", "" // dm-crypt's defaults for a bare cipher
	if len(f) > 1 {
		chain = f[1]
	}
	if len(f) > 2 {
		iv = f[2]
	}
	if chain == "plain" && iv == "" { // "aes-plain" is cbc with the plain IV
		chain = "cbc"
	}
	alg := chain + "(" + cipher + ")"
	if ivmode, hash, ok := strings.Cut(iv, ":"); ok && ivmode == "essiv" {
		alg = "essiv(" + alg + "," + hash + ")"
	}
	return alg, nil
}
