// Parent-child coordination: the Durable Objects pattern where a parent
// (a workspace) creates child objects (documents) named from its own id
// and tracks them in its SQL database.
//
//	createDocument(name) { docId = randomUUID(); child = DOCUMENT.idFromName(`${ctx.id}:${docId}`);
//	                       await child.initialize(name); INSERT INTO documents … }
//	listDocuments() { SELECT id FROM documents }
//
// In Cairn objects are addressed by name, so the child is simply the
// object "<parent id>:<doc id>" of the documents namespace; it is
// initialized first, then the parent records it (as in the Durable Objects pattern: a crash
// in between leaves a child the parent does not list, never a listed
// child that does not exist). Because the children share the parent's
// prefix, the object listing (GET /v1/ns/{ns}/objects?prefix=…) finds them
// too, which is how such orphans can be found.
//
// It checks that the parent's table, the object listing by prefix and the
// children's own content agree on the documents created.
//
//	go run ./examples/parent-child     # against CAIRN_URL (default http://127.0.0.1:8080)
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairndb/cairn/client"
	"github.com/cairndb/cairn/examples/internal/example"
)

// Workspace is the parent object.
type Workspace struct {
	obj  *client.Object
	docs *client.Namespace // the children's namespace
}

func (w *Workspace) init(ctx context.Context) error {
	_, err := w.obj.SQL(ctx, "CREATE TABLE IF NOT EXISTS documents(id TEXT PRIMARY KEY, name TEXT NOT NULL, created INTEGER NOT NULL)")
	return err
}

// childName names a document's object from the parent's id.
func (w *Workspace) childName(docID string) string { return w.obj.ID() + ":" + docID }

// CreateDocument creates a child document and records it in the parent.
func (w *Workspace) CreateDocument(ctx context.Context, name string) (string, error) {
	docID := rand.Text() // 26 random base32 characters, like a UUID
	child := w.docs.Object(w.childName(docID))
	// The child's initialize(): its own SQL database.
	if _, err := child.Batch(ctx, []client.Statement{
		{SQL: "CREATE TABLE IF NOT EXISTS content(key TEXT PRIMARY KEY, value TEXT)"},
		{SQL: "INSERT INTO content VALUES (?, ?)", Args: []any{"name", name}},
	}); err != nil {
		return "", fmt.Errorf("initializing document %s: %w", docID, err)
	}
	if _, err := w.obj.SQL(ctx, "INSERT INTO documents(id, name, created) VALUES (?, ?, ?)", docID, name, time.Now().UnixMilli()); err != nil {
		return "", fmt.Errorf("recording document %s: %w", docID, err)
	}
	return docID, nil
}

// ListDocuments lists the ids the parent tracks.
func (w *Workspace) ListDocuments(ctx context.Context) ([]string, error) {
	rows, err := w.obj.Query(ctx, "SELECT id FROM documents ORDER BY id")
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := example.Connect()
	workspaces := c.Namespace("examples")
	ws := &Workspace{obj: workspaces.Object("workspace-" + example.Suffix(ctx, workspaces)), docs: c.Namespace("examples-docs")}
	fmt.Printf("workspace %q (id %s…), documents in namespace %q\n", ws.obj.Name(), ws.obj.ID()[:12], ws.docs.Name())
	example.Check(ws.init(ctx))

	names := map[string]string{} // doc id → name
	for _, name := range []string{"Design notes", "Roadmap", "Minutes"} {
		id, err := ws.CreateDocument(ctx, name)
		example.Check(err)
		names[id] = name
		fmt.Printf("created document %s %q as object %s…:%s\n", id, name, ws.obj.ID()[:12], id)
	}

	// The parent's view.
	tracked, err := ws.ListDocuments(ctx)
	example.Check(err)
	want := make([]string, 0, len(names))
	for id := range names {
		want = append(want, id)
	}
	slices.Sort(want)
	if !slices.Equal(tracked, want) {
		example.Fail("the parent tracks %v, want %v", tracked, want)
	}
	fmt.Printf("the parent's documents table lists %d documents\n", len(tracked))

	// The cluster's view: the children's objects, by the parent's prefix.
	var listed []string
	for o, err := range ws.docs.AllObjects(ctx, client.ObjectsOptions{Prefix: ws.obj.ID() + ":"}) {
		example.Check(err)
		listed = append(listed, strings.TrimPrefix(o.Name, ws.obj.ID()+":"))
	}
	if !slices.Equal(listed, want) {
		example.Fail("the object listing by prefix finds %v, want %v", listed, want)
	}
	fmt.Printf("GET /objects?prefix=<parent id>: finds the same %d children\n", len(listed))

	// Each child knows its name.
	for id, name := range names {
		rows, err := ws.docs.Object(ws.childName(id)).Query(ctx, "SELECT value FROM content WHERE key = 'name'")
		example.Check(err)
		var got string
		example.Check(rows.One(&got))
		if got != name {
			example.Fail("document %s is called %q, want %q", id, got, name)
		}
	}
	fmt.Println("every child holds its own name: ok")
}
