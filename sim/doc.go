// Package sim is a faithful in-memory simulator of the Datorama platform and Query API,
// served as an http.Handler with ground truth and controls under /_sim/. It must not know
// the client: it speaks HTTP and JSON only, and never imports package datorama.
//
// The simulator follows every [C] fact of ../shared/datorama-api.md exactly. Each [I]/[U]
// behaviour is an Options field whose zero value is the most likely behaviour; the choice
// is documented on the field.
//
// Time is lazy: nothing runs in the background. Every request (and every Go control call)
// first catches the account up to the clock's Now by draining a time-ordered event queue
// (job starts and ends, scheduled daily runs), so a manual clock makes a simulated day of
// traffic as cheap as the events in it. The account's history is produced the same way at
// New: the generator schedules streams, processes and reruns over the history window and
// runs the same event engine forward to Now, so every stream's last-run fields agree with
// its jobs by construction.
//
// Modelling choices that are not in the facts file (all documented where they live):
//   - Jobs of one stream run one at a time, in creation order; later jobs wait in PENDING.
//   - A scheduled daily run happens at the stream's retrievalPeriodHour (UTC) and loads
//     that day (dataStartDate = dataEndDate = the run's UTC day).
//   - Jobs take minutes; about 1% get stuck IN_PROGRESS for hours. Every job finishes
//     within 31 hours of starting.
//   - Each stream has a deterministic number of rows (and impressions, clicks, cost) per
//     day. A job's rows are the sum over its date range; the Query API answers from the
//     days covered by SUCCESS jobs (Truth.DailyRows).
//   - Token visibility: a workspace a token cannot see answers 403 on workspace-scoped
//     paths; streams and jobs of such a workspace answer 404, as if they did not exist.
//   - Every answer (2xx, 4xx, 429, 5xx, and the /_sim/ controls) carries a Date header in
//     the simulator's own time (its clock, moved by POST /_sim/advance), in IMF-fixdate
//     form, whole seconds, GMT. [I] Inferred from HTTP conventions, not from Datorama
//     sources: RFC 9110 §6.6.1 requires an origin server with a clock to send Date on
//     2xx, 3xx and 4xx answers (and allows it on 5xx), and every common server does. The
//     facts file says nothing about Date. The client estimates the API's clock from it.
//
// Faults (Options.Faults, SetFaults, POST /_sim/faults, `drextract sim --faults`) come in
// two families. FaultKinds fail in transport or paging (5xx, slow answers, resets,
// truncated or malformed JSON, HTML pages, 429 storms, repeated or empty stats pages)
// and a client gets past them by retrying. HostileKinds answer 200 with well-formed but
// impossible listings, which a client must refuse: dupid (the second record carries the
// first one's id, or system name for dimensions and measurements), sameid (every record
// does), negid (the last record's id negated), nullstatus (a job whose status is null)
// and hugepage (a stats page padded to Faults.HugePageBytes, 240 MiB by default).
// "all=RATE" sets only FaultKinds. Faults.Path (path=PATTERN) keeps faults to the
// requests whose path matches, e.g. path=/v1/workspaces/*/data-streams. Hostile answers
// never change the account or its truth.
package sim
