// In-memory caching: the Durable Objects pattern that keeps users in a Map
// in front of storage.get/put.
//
//	async getUser(id) { if cached return it; user = await storage.get(`user:${id}`); cache it }
//	async updateUser(id, data) { updated = {...await getUser(id), ...data}; cache it; storage.put(…) }
//
// A Durable Object's instance is the only writer of its storage, so its
// Map is never stale. A Cairn object is written by any number of clients,
// so this cache keeps each user's version (the key's ETag) with it:
//
//   - getUser revalidates with IfNoneMatch(version): "not modified" costs
//     no value transfer, and a changed user comes back in the same call;
//   - updateUser writes with IfVersion(version): if another client wrote
//     first, the write is refused (412), the cache reloads and merges again,
//     so no update is lost.
//
// It checks: the first read is a miss, the next a validated hit; a write
// by another cache is seen; two caches updating different fields of one
// user concurrently both keep their field.
//
//	go run ./examples/cache     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// User is a user's profile: a map, so partial updates merge field by field.
type User map[string]string

type cached struct {
	user    User
	version client.Version
}

// UserCache caches the users of one object, each with its version.
type UserCache struct {
	name string
	obj  *client.Object

	mu      sync.Mutex
	entries map[string]cached
	// hits (validated), misses (loaded) and stale (reloaded after a change).
	hits, misses, stale int
}

func NewUserCache(name string, obj *client.Object) *UserCache {
	return &UserCache{name: name, obj: obj, entries: map[string]cached{}}
}

func userKey(id string) string { return "user:" + id }

// GetUser returns the user and its version, from the cache when the
// stored version is still the cached one.
func (c *UserCache) GetUser(ctx context.Context, id string) (User, client.Version, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	var opts []client.CallOption
	if ok {
		opts = append(opts, client.IfNoneMatch(e.version))
	}
	v, err := c.obj.GetBytes(ctx, userKey(id), opts...)
	switch {
	case errors.Is(err, client.ErrNotModified):
		c.count(&c.hits)
		return maps.Clone(e.user), e.version, nil
	case errors.Is(err, client.ErrNotFound):
		c.forget(id)
		return nil, "", nil
	case err != nil:
		return nil, "", err
	}
	var u User
	if err := v.Decode(&u); err != nil {
		return nil, "", err
	}
	if ok {
		c.count(&c.stale)
	} else {
		c.count(&c.misses)
	}
	c.mu.Lock()
	c.entries[id] = cached{user: maps.Clone(u), version: v.Version}
	c.mu.Unlock()
	return u, v.Version, nil
}

// UpdateUser merges data into the user and stores it, unless someone
// else changed the user since it was read: then it reads and merges again.
func (c *UserCache) UpdateUser(ctx context.Context, id string, data User) (User, error) {
	for attempt := 1; ; attempt++ {
		u, ver, err := c.GetUser(ctx, id)
		if err != nil {
			return nil, err
		}
		updated := User{}
		maps.Copy(updated, u)
		maps.Copy(updated, data)
		cond := client.IfAbsent()
		if ver != "" {
			cond = client.IfVersion(ver)
		}
		newVer, err := c.obj.Put(ctx, userKey(id), updated, cond)
		if errors.Is(err, client.ErrPreconditionFailed) {
			fmt.Printf("  %s: user %s changed under us (attempt %d): reloading and merging again\n", c.name, id, attempt)
			continue
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.entries[id] = cached{user: maps.Clone(updated), version: newVer}
		c.mu.Unlock()
		return updated, nil
	}
}

func (c *UserCache) count(n *int) {
	c.mu.Lock()
	*n++
	c.mu.Unlock()
}

func (c *UserCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := example.Connect()
	ns := cl.Namespace("examples")
	obj := ns.Object("cache-" + example.Suffix(ctx, ns))
	fmt.Printf("user cache on object %q\n", obj.Name())

	a := NewUserCache("cache A", obj)
	b := NewUserCache("cache B", obj) // another client of the same object

	_, err := a.UpdateUser(ctx, "42", User{"name": "Alice"})
	example.Check(err)
	fmt.Println("A created user 42")
	u, _, err := b.GetUser(ctx, "42")
	example.Check(err)
	expect(u["name"] == "Alice", "B reads name=Alice, got %v", u)
	u, _, err = b.GetUser(ctx, "42")
	example.Check(err)
	expect(b.misses == 1 && b.hits == 1, "B: want 1 miss then 1 validated hit, got %d misses, %d hits", b.misses, b.hits)
	fmt.Printf("B read it twice: 1 miss, then 1 hit validated by version (304, no value sent)\n")

	_, err = b.UpdateUser(ctx, "42", User{"plan": "pro"})
	example.Check(err)
	u, _, err = a.GetUser(ctx, "42")
	example.Check(err)
	expect(u["plan"] == "pro" && u["name"] == "Alice", "A sees B's write, got %v", u)
	expect(a.stale == 1, "A: want its copy found stale once, got %d", a.stale)
	fmt.Printf("B set plan=pro; A's next read found its copy stale and reloaded: %v\n", u)

	// Concurrent updates of different fields: IfVersion makes the loser
	// reload and merge, so both fields survive.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, w := range []struct {
		c    *UserCache
		data User
	}{{a, User{"email": "alice@example.com"}}, {b, User{"city": "Lisbon"}}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.c.UpdateUser(ctx, "42", w.data)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		example.Check(err)
	}
	var stored User
	example.Check(obj.Get(ctx, userKey("42"), &stored))
	want := User{"name": "Alice", "plan": "pro", "email": "alice@example.com", "city": "Lisbon"}
	expect(maps.Equal(stored, want), "after concurrent updates the user is %v, want %v", stored, want)
	fmt.Printf("A and B updated different fields at once: no update lost: %v\n", stored)
	fmt.Println("ok")
}

func expect(ok bool, format string, args ...any) {
	if !ok {
		example.Fail(format, args...)
	}
}
