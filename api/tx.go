package api

import (
	"net/http"
)

// tx answers POST …/tx: a transaction that writes goes through Raft; one
// that only reads is served as a read, from one consistent view.
func (s *Server) tx(w http.ResponseWriter, r *http.Request, req *request) error {
	tx, err := decodeTx(req.body)
	if err != nil {
		return err
	}
	res, err := s.runTx(w, r, req, tx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderTx(tx, res))
	return nil
}
