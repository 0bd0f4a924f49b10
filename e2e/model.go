package e2e

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// registerKey names one register of the model.
func registerKey(in Input) string { return in.Object + "\x00" + in.Key }

// RegisterModel is a set of registers (one per object and key) with get,
// put and cas, partitioned by key: a history is linearizable if and only if
// the history of every key is. The state of one partition is the register's
// value, "" while it is missing.
//
//   - get ok v: legal iff the value is v.
//   - put ok, or put unknown: the value becomes the put's. An unknown put's
//     return is after every other event, so the checker may also place it
//     last, which is the same as never applied.
//   - cas ok: legal iff the value is the expected one; it becomes the new.
//   - cas failed: legal iff the value differs from the expected one (and
//     equals the value the cas's read observed, when it observed one).
//   - cas unknown: applies if the value is the expected one, else nothing.
//
// Operations refused for sure are not in the history at all (see
// PorcupineHistory): they had no effect and saw nothing.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := registerKey(op.Input.(Input))
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		// A return event carries the output only; find its key by its call.
		keyOf := map[int]string{}
		byKey := map[string][]porcupine.Event{}
		var keys []string
		for _, ev := range history {
			if ev.Kind == porcupine.CallEvent {
				keyOf[ev.Id] = registerKey(ev.Value.(Input))
			}
			k := keyOf[ev.Id]
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], ev)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Event, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		return stepRegister(state.(string), input.(Input), output.(Output))
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		switch in.Op {
		case OpGet:
			return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
		case OpPut:
			return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, out.Outcome)
		case OpCAS:
			s := fmt.Sprintf("cas(%s, %q → %q) -> %s", in.Key, in.Expected, in.Value, out.Outcome)
			if out.Observed {
				s += fmt.Sprintf(" (saw %q)", out.Value)
			}
			return s
		}
		return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, out.Outcome)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state.(string)) },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return fmt.Sprint(info)
	},
}

func stepRegister(state string, in Input, out Output) (bool, any) {
	switch in.Op {
	case OpGet:
		return out.Outcome == OutcomeOK && out.Value == state, state
	case OpPut:
		switch out.Outcome {
		case OutcomeOK, OutcomeUnknown:
			return true, in.Value
		}
	case OpCAS:
		switch out.Outcome {
		case OutcomeOK:
			if state == in.Expected {
				return true, in.Value
			}
			return false, state
		case OutcomeFailed:
			if out.Observed {
				return state == out.Value && state != in.Expected, state
			}
			return state != in.Expected, state
		case OutcomeUnknown:
			if state == in.Expected {
				return true, in.Value
			}
			return true, state
		}
	}
	return false, state
}

// PorcupineHistory turns records of get, put and cas into porcupine's
// operations: refused operations are left out, and every unknown outcome
// returns after every other event.
func PorcupineHistory(records []Record) []porcupine.Operation {
	var last int64
	for _, r := range records {
		last = max(last, r.Call, r.Return)
	}
	var ops []porcupine.Operation
	for _, r := range records {
		if r.Refused || r.Input.Op == OpIncr {
			continue
		}
		ret := r.Return
		if r.Output.Outcome == OutcomeUnknown {
			ret = last + 1
		}
		ops = append(ops, porcupine.Operation{
			ClientId: r.Stream,
			Input:    r.Input,
			Output:   r.Output,
			Call:     r.Call,
			Return:   ret,
			Metadata: fmt.Sprintf("#%d client %d via %s status %d %s %s", r.ID, r.Client, r.Endpoint, r.Status, r.Code, r.Err),
		})
	}
	return ops
}
