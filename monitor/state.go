package monitor

import (
	"time"
)

// Status is where a monitor's evaluation stands.
type Status string

// Statuses: ok → pending (crossing, fewer minutes than the period) →
// firing (crossing for the period) → resolved (back under the threshold;
// it behaves as ok until the next crossing).
const (
	StatusOK       Status = "ok"
	StatusPending  Status = "pending"
	StatusFiring   Status = "firing"
	StatusResolved Status = "resolved"
)

// State is a monitor's evaluation state. It is saved whenever a closed
// minute has been evaluated, so a restart resumes where it stopped.
type State struct {
	MonitorID string `json:"-"`
	App       string `json:"-"`
	Status    Status `json:"status"`
	// Since is the first minute of the current crossing (pending or
	// firing), or the minute the monitor resolved.
	Since time.Time `json:"since,omitzero"`
	// LastMinute is the last closed minute evaluated.
	LastMinute time.Time `json:"last_minute,omitzero"`
	// Run counts the consecutive crossing minutes up to LastMinute.
	Run int `json:"-"`
	// LastNotified is the minute of the last firing or reminder
	// notification.
	LastNotified time.Time `json:"last_notified,omitzero"`
	// Value is LastMinute's value; HasValue is false when the minute had
	// nothing to measure (no requests for LATENCY).
	Value    float64 `json:"value"`
	HasValue bool    `json:"has_value"`
}

// NotificationType says why a notification was sent.
type NotificationType string

// Notification types.
const (
	NotifyFiring   NotificationType = "firing"
	NotifyReminder NotificationType = "reminder"
	NotifyResolved NotificationType = "resolved"
)

// change is one step's outcome: a transition (From != To), a reminder
// (Notify == NotifyReminder), or both.
type change struct {
	From, To Status
	Notify   NotificationType
	Since    time.Time // the crossing's first minute (for links)
}

// step evaluates one closed minute. It is a pure function of the state,
// the monitor and the minute's value, which is what lets late data be
// replayed over the minutes it changed.
func (st *State) step(m *Monitor, minute time.Time, v minuteValue) []change {
	st.LastMinute, st.Value, st.HasValue = minute, v.value, v.has
	if v.breach {
		st.Run++
	} else {
		st.Run = 0
	}
	var out []change
	move := func(to Status, n NotificationType) {
		out = append(out, change{From: st.Status, To: to, Notify: n, Since: st.Since})
		st.Status = to
	}
	switch st.Status {
	case StatusFiring:
		if !v.breach {
			move(StatusResolved, NotifyResolved)
			st.Since = minute
			return out
		}
		if minute.Sub(st.LastNotified) >= time.Duration(m.NotificationPeriod)*time.Minute {
			out = append(out, change{From: StatusFiring, To: StatusFiring, Notify: NotifyReminder, Since: st.Since})
			st.LastNotified = minute
		}
	case StatusPending:
		if !v.breach {
			move(StatusOK, "")
			st.Since = time.Time{}
			return out
		}
	default: // ok, resolved, or never evaluated
		if !v.breach {
			if st.Status == "" {
				st.Status = StatusOK
			}
			return out
		}
		st.Since = minute
		move(StatusPending, "")
	}
	if st.Status == StatusPending && st.Run >= m.Period {
		move(StatusFiring, NotifyFiring)
		st.LastNotified = minute
	}
	return out
}
