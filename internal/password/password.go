// Package password hashes and checks account passwords (bcrypt) and makes
// the random passwords Sightline prints at a first start.
package password

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Cost is the bcrypt cost used for new hashes.
const Cost = bcrypt.DefaultCost

// MaxLen is the longest password accepted: bcrypt reads only 72 bytes, and a
// longer one would be silently truncated.
const MaxLen = 72

// Hash returns the bcrypt hash of pw, refusing an empty or too long one.
func Hash(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("password is empty")
	}
	if len(pw) > MaxLen {
		return "", fmt.Errorf("password is longer than %d bytes", MaxLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), Cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Check reports whether pw matches hash.
func Check(hash, pw string) bool {
	return len(pw) <= MaxLen && bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// Generate returns a random password of 20 characters from an alphabet
// without look-alike characters.
func Generate() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Checker is Check with a memory of recent successes, so that an API client
// sending Basic credentials on every request pays bcrypt once every TTL, not
// per request. Entries are keyed by a hash of the stored hash and the
// password, so a changed password misses. The zero value is ready to use.
type Checker struct {
	mu sync.Mutex
	m  map[[32]byte]time.Time
}

// Checker limits.
const (
	CheckerTTL  = 5 * time.Minute
	checkerKeys = 1024
)

// Check reports whether pw matches hash.
func (c *Checker) Check(hash, pw string) bool {
	key := sha256.Sum256([]byte(hash + "\x00" + pw))
	c.mu.Lock()
	exp, ok := c.m[key]
	c.mu.Unlock()
	if ok && time.Now().Before(exp) {
		return true
	}
	if !Check(hash, pw) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= checkerKeys {
		c.m = make(map[[32]byte]time.Time)
	}
	c.m[key] = time.Now().Add(CheckerTTL)
	return true
}
