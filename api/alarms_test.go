package api_test

import (
	"fmt"
	"net/http"
	"testing"
)

// far is a scheduled time no test run reaches (2100-01-01), so no alarm of
// these tests is ever delivered.
const far = 4102444800000

func TestAlarms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const ns = "alarms"
	alarm := func(e *env, obj string) string {
		r := e.do("GET", objPath(ns, obj, "/alarm"), nil).want(e.t, http.StatusOK)
		wantMembers(e.t, r.json(e.t), "scheduledTime")
		return fmt.Sprint(r.json(e.t)["scheduledTime"])
	}

	t.Run("set, read, replace, delete", func(t *testing.T) {
		e := e.at(t)
		if got := alarm(e, "a"); got != "<nil>" {
			t.Fatalf("no alarm reads as %s, want null", got)
		}
		r := e.doJSON("PUT", objPath(ns, "a", "/alarm"), fmt.Sprintf(`{"scheduledTime":%d}`, far)).want(t, http.StatusOK)
		wantJSON(t, "PUT answer", r.body, fmt.Sprintf(`{"scheduledTime":%d,"version":%q}`, far, r.json(t)["version"]))
		if got := alarm(e, "a"); got != fmt.Sprint(far) {
			t.Fatalf("alarm %s, want %d", got, far)
		}
		e.doJSON("PUT", objPath(ns, "a", "/alarm"), fmt.Sprintf(`{"scheduledTime":%d}`, far+1)).want(t, http.StatusOK)
		if got := alarm(e, "a"); got != fmt.Sprint(far+1) {
			t.Fatalf("replaced alarm %s, want %d", got, far+1)
		}
		// An object that holds only an alarm is listed.
		e.wantObjects(ns, "a")
		mustUint(t, e.do("DELETE", objPath(ns, "a", "/alarm"), nil).want(t, http.StatusOK).json(t)["version"].(string))
		if got := alarm(e, "a"); got != "<nil>" {
			t.Fatalf("deleted alarm reads as %s", got)
		}
		e.wantObjects(ns)
		e.do("DELETE", objPath(ns, "a", "/alarm"), nil).want(t, http.StatusOK)
	})

	t.Run("deleteAll keeps the alarm unless alarm=true", func(t *testing.T) {
		e := e.at(t)
		e.put(ns, "b", "k", []byte("v"), "")
		e.doJSON("PUT", objPath(ns, "b", "/alarm"), fmt.Sprintf(`{"scheduledTime":%d}`, far)).want(t, http.StatusOK)
		e.do("DELETE", objPath(ns, "b", ""), nil).want(t, http.StatusOK)
		e.wantKeys(ns, "b")
		if got := alarm(e, "b"); got != fmt.Sprint(far) {
			t.Fatalf("alarm after deleteAll: %s", got)
		}
		e.wantObjects(ns, "b")
		e.do("DELETE", objPath(ns, "b", "?alarm=true"), nil).want(t, http.StatusOK)
		if got := alarm(e, "b"); got != "<nil>" {
			t.Fatalf("alarm after deleteAll with alarm=true: %s", got)
		}
		e.wantObjects(ns)
	})

	t.Run("tx ops", func(t *testing.T) {
		e := e.at(t)
		r := e.tx(ns, "c", fmt.Sprintf(`{"ops":[{"getAlarm":{}},{"setAlarm":{"scheduledTime":%d}},{"getAlarm":{}},{"deleteAlarm":{}},{"getAlarm":{}},{"setAlarm":{"scheduledTime":%d}}]}`, far, far+5))
		wantJSON(t, "results", mustMarshal(t, r.Results), fmt.Sprintf(
			`[{"scheduledTime":null},{},{"scheduledTime":%d},{},{"scheduledTime":null},{}]`, far))
		if got := alarm(e, "c"); got != fmt.Sprint(far+5) {
			t.Fatalf("alarm after tx %s", got)
		}
		// getAlarm alone is a read: no new version.
		again := e.tx(ns, "c", `{"ops":[{"getAlarm":{}}]}`)
		if again.Version != r.Version {
			t.Fatalf("read-only getAlarm tx version %s, want %s", again.Version, r.Version)
		}
		// A failing tx sets no alarm.
		e.doJSON("POST", objPath(ns, "c", "/tx"), fmt.Sprintf(`{"if":[{"key":"x","exists":true}],"ops":[{"setAlarm":{"scheduledTime":%d}}]}`, far+9)).
			wantProblem(t, http.StatusPreconditionFailed, "precondition_failed")
		if got := alarm(e, "c"); got != fmt.Sprint(far+5) {
			t.Fatalf("alarm after a failed tx %s", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		e := e.at(t)
		for _, tc := range []struct {
			body, code string
		}{
			{`{}`, "invalid_parameter"},
			{`{"scheduledTime":null}`, "invalid_parameter"},
			{`{"scheduledTime":"soon"}`, "invalid_json"},
			{`{"scheduledTime":1.5}`, "invalid_json"},
			{`{"scheduledTime":1,"x":1}`, "invalid_json"},
			{`{"scheduledTime":1}]`, "invalid_json"},
			{`nope`, "invalid_json"},
		} {
			e.doJSON("PUT", objPath(ns, "d", "/alarm"), tc.body).wantProblem(t, http.StatusBadRequest, tc.code)
		}
		if got := alarm(e, "d"); got != "<nil>" {
			t.Fatalf("a rejected PUT set alarm %s", got)
		}
		e.do("POST", objPath(ns, "d", "/alarm"), nil).wantProblem(t, http.StatusMethodNotAllowed, "method_not_allowed")
		e.wantObjects(ns, "c") // "d" holds nothing
	})
}
