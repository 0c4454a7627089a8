package auth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"hash"
	"slices"
)

// The password hashing algorithms, by RabbitMQ's names for them (the
// hashing_algorithm of a definitions file). Each hash is a 4-byte random
// salt followed by the digest of salt || password.
const (
	HashSHA256 = "rabbit_password_hashing_sha256" // the default
	HashSHA512 = "rabbit_password_hashing_sha512"
	HashMD5    = "rabbit_password_hashing_md5" // legacy, accepted for imports
)

// newHash returns the digest of algorithm, or nil for an unknown one.
func newHash(algorithm string) hash.Hash {
	switch algorithm {
	case HashSHA256, "":
		return sha256.New()
	case HashSHA512:
		return sha512.New()
	case HashMD5:
		return md5.New()
	}
	return nil
}

// KnownHashing reports whether algorithm names a hashing algorithm Warren
// can check passwords with.
func KnownHashing(algorithm string) bool { return newHash(algorithm) != nil }

// HashPassword returns a salted SHA-256 hash of password in RabbitMQ's
// format.
func HashPassword(password string) []byte {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	return hashWithSalt(HashSHA256, salt, password)
}

func hashWithSalt(algorithm string, salt []byte, password string) []byte {
	h := newHash(algorithm)
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(slices.Clone(salt))
}

// passwordMatches reports whether password is the one hash (made with
// algorithm) was made from. An empty or malformed hash matches nothing: a
// user without a password cannot log in with one.
func passwordMatches(algorithm string, hash []byte, password string) bool {
	h := newHash(algorithm)
	if h == nil || len(hash) != 4+h.Size() {
		return false
	}
	return subtle.ConstantTimeCompare(hashWithSalt(algorithm, hash[:4], password), hash) == 1
}
