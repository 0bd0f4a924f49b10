package api

import (
	"net/http"

	"github.com/cairndb/cairn/objectstore"
	"github.com/cockroachdb/pebble/v2"
)

// tx answers POST …/tx: a transaction that writes goes through Raft; one
// that only reads is served as a read, from one consistent view.
func (s *Server) tx(w http.ResponseWriter, r *http.Request, req *request) error {
	tx, err := decodeTx(req.body)
	if err != nil {
		return err
	}
	var res *objectstore.TxResult
	if tx.Writes() {
		if err := requireWrite(r); err != nil {
			return err
		}
		res, err = s.proposeTx(w, r, req, tx)
	} else {
		err = s.read(r, req.shard, func(rd pebble.Reader) error {
			applied, err := objectstore.AppliedIndex(rd, req.shard)
			if err != nil {
				return err
			}
			res, err = objectstore.Exec(rd, nil, req.object(), tx, applied)
			return err
		})
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderTx(tx, res))
	return nil
}
