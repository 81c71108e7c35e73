package recorder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// The mock's keys, serial numbers and signatures are derived from the stack
// and the resource's name instead of fresh randomness, so two runs of the
// same program register the same certificates and a render diff shows only
// real changes. They stand in for what the tls provider computes at deploy
// time; nothing derived here may ever protect anything.

// seededStream is an endless SHA-256 counter-mode stream of bytes from seed.
type seededStream struct {
	seed    []byte
	counter uint64
	buf     []byte
}

func newSeededStream(parts ...string) *seededStream {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
		_ = binary.Write(h, binary.BigEndian, uint64(len(p)))
		h.Write([]byte(p))
	}
	return &seededStream{seed: h.Sum(nil)}
}

func (s *seededStream) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if len(s.buf) == 0 {
			var block [8]byte
			binary.BigEndian.PutUint64(block[:], s.counter)
			s.counter++
			sum := sha256.Sum256(append(append([]byte(nil), s.seed...), block[:]...))
			s.buf = sum[:]
		}
		c := copy(p[n:], s.buf)
		s.buf, n = s.buf[c:], n+c
	}
	return len(p), nil
}

// seededKey derives the private key of the tls PrivateKey resource called
// name in stack.
func seededKey(algorithm, stack, name string) (crypto.Signer, error) {
	stream := newSeededStream("private key", stack, name)
	switch algorithm {
	case "", "RSA":
		return seededRSAKey(stream, 2048)
	case "ECDSA":
		curve := elliptic.P256()
		// d in [1, n-1], from 64 bytes so the reduction is unbiased enough.
		wide := new(big.Int).SetBytes(readN(stream, 64))
		nMinus1 := new(big.Int).Sub(curve.Params().N, big.NewInt(1))
		d := wide.Mod(wide, nMinus1).Add(wide, big.NewInt(1))
		return ecdsa.ParseRawPrivateKey(curve, d.FillBytes(make([]byte, 32)))
	}
	return nil, fmt.Errorf("unsupported algorithm %q", algorithm)
}

// seededRSAKey builds an RSA key from two primes drawn from stream:
// rsa.GenerateKey ignores its random source since Go 1.26.
func seededRSAKey(stream io.Reader, bits int) (*rsa.PrivateKey, error) {
	e := big.NewInt(65537)
	for {
		p, q := seededPrime(stream, bits/2), seededPrime(stream, bits/2)
		if p.Cmp(q) == 0 {
			continue
		}
		one := big.NewInt(1)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		key := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: int(e.Int64())},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		key.Precompute()
		if err := key.Validate(); err != nil {
			return nil, err
		}
		return key, nil
	}
}

// seededPrime is the first prime of bits bits (top two bits set, so p*q
// has exactly twice as many) among candidates drawn from stream.
func seededPrime(stream io.Reader, bits int) *big.Int {
	for {
		b := readN(stream, bits/8)
		b[0] |= 0xC0
		b[len(b)-1] |= 1
		if p := new(big.Int).SetBytes(b); p.ProbablyPrime(20) {
			return p
		}
	}
}

// seededSerial is the serial number of the certificate of resource name.
func seededSerial(stack, name string) *big.Int {
	b := readN(newSeededStream("serial", stack, name), 16)
	b[0] &= 0x7F // positive, as RFC 5280 requires
	return new(big.Int).SetBytes(b)
}

func readN(r io.Reader, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(r, b) // a seededStream never fails
	return b
}

// deterministicSigner signs without randomness: ECDSA per RFC 6979 (a nil
// random source asks for it), RSA PKCS #1 v1.5, which needs none.
type deterministicSigner struct{ crypto.Signer }

func (s deterministicSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.Signer.Sign(nil, digest, opts)
}

var errNotSigner = errors.New("private key cannot sign")
