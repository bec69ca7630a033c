package steps

// The ports: what a step's Do and Verify may call. Adapters (package kong,
// package traffic) satisfy these interfaces; the wiring in cmd/kongbot hands
// them to the runner. They are small on purpose: each step uses one or two.
//
// Every method takes the gateway name from config (e.g. "prod"); the adapter
// resolves its nodes, datastore and credentials from config itself.

import (
	"context"
	"time"
)

// Generation is one set of nodes of a gateway that run one Kong version,
// e.g. the old 0.13.1 cluster or the new 0.14.1 one. Config names them by the
// version they run.
type Generation string

// Node is what one node's Admin API said (GET / and GET /status).
type Node struct {
	Name        string     `json:"name"`
	Generation  Generation `json:"generation"`
	AdminURL    string     `json:"admin_url"`
	ProxyURL    string     `json:"proxy_url"`
	Reachable   bool       `json:"reachable"`
	Version     string     `json:"version,omitempty"`       // from GET /
	DatabaseOK  bool       `json:"database_ok"`             // GET /status database.reachable
	Available   []string   `json:"available,omitempty"`     // plugins.available_on_server
	EnabledInDB []string   `json:"enabled_in_db,omitempty"` // plugins.enabled_in_cluster
	Error       string     `json:"error,omitempty"`
}

// SchemaState is the datastore's migration state, read by SQL alone
// (kong-reference §3.4).
type SchemaState string

const (
	SchemaEmpty       SchemaState = "empty"
	Schema013         SchemaState = "0.13"
	Schema014         SchemaState = "0.14"
	Schema10Pending   SchemaState = "1.0-pending" // 1.0 `up` done, `finish` not yet
	Schema10          SchemaState = "1.0"         // finished (or fresh bootstrap)
	Schema10Bootstrap SchemaState = "1.0-bootstrapped-empty"
	SchemaUnknown     SchemaState = "unknown"
)

// Counts are entity counts read from the datastore.
type Counts struct {
	APIs      int            `json:"apis"`
	Services  int            `json:"services"`
	Routes    int            `json:"routes"`
	Consumers int            `json:"consumers"`
	Plugins   map[string]int `json:"plugins"` // by plugin name
}

// Inventory is a gateway read back: every node of every generation and the
// datastore. Problems name what is wrong in plain words.
type Inventory struct {
	Gateway  string      `json:"gateway"`
	Nodes    []Node      `json:"nodes"`
	Schema   SchemaState `json:"schema"`
	Counts   Counts      `json:"counts"`
	Problems []string    `json:"problems,omitempty"`
	ReadAt   time.Time   `json:"read_at"`
}

// Check is the outcome of a Verify or a preflight: OK, or the list of what is
// still missing ("node kong-new-2 answers 0.14.0, want 0.14.1").
type Check struct {
	OK      bool     `json:"ok"`
	Missing []string `json:"missing,omitempty"`
	// Facts are figures worth showing next to the verdict (counts, probe
	// statuses, weights), in display order.
	Facts []Fact `json:"facts,omitempty"`
	// Pause, when set, means the step stopped to wait for a person instead
	// of failing: the runner asks for one of Pause.Choices (see Pause).
	Pause *Pause `json:"pause,omitempty"`
}

// PauseKind says what a paused step waits for.
type PauseKind string

const (
	// PauseApproval: a lead approves the next stage of a gradual step.
	PauseApproval PauseKind = "approval"
	// PauseManual: a person makes a change by hand, then clicks "Mark done".
	PauseManual PauseKind = "manual"
	// PauseBreach: a health gate failed clearly; the adapter has already
	// moved back to the last good state.
	PauseBreach PauseKind = "breach"
	// PauseInconclusive: a health gate could not decide (too little
	// traffic, borderline figures); a lead decides instead of the bot.
	PauseInconclusive PauseKind = "inconclusive"
)

// Choice is one answer a person can give to a Pause.
type Choice string

const (
	ChoiceApprove  Choice = "approve"  // go on to the next stage
	ChoiceDone     Choice = "done"     // "Mark done": the manual change is made
	ChoiceResume   Choice = "resume"   // run the paused stage again
	ChoiceRollBack Choice = "rollback" // move everything back to the old generation
	ChoiceAbort    Choice = "abort"    // abort the run; the runner handles it
)

// Pause is a step's request to wait for a person rather than block inside
// Do. The runner shows Message (and the Check's Facts) with one button per
// choice. When someone answers, the runner writes the choice to the step's
// Journal under Key and runs the step's Do again; the adapter reads its own
// key back and goes on from there. ChoiceAbort is the runner's own (it
// aborts the run) and need not be written back. Keys are unique per
// question, so an answer is never applied to a later question.
type Pause struct {
	Kind    PauseKind `json:"kind"`
	Key     string    `json:"key"`
	Message string    `json:"message"`
	Choices []Choice  `json:"choices"`
}

// Fact is one named figure of a Check.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Sink receives a step's output as it happens (migration log lines, probe
// results); the runner forwards it to the run's thread.
type Sink interface {
	Line(stream, text string)
}

// Journal is a step's durable scratch space inside the run, written to the
// store before Put returns. Steps keep what they created in it (the
// request-termination plugin ID, the Service and Route IDs of each converted
// API) so that a re-run after a crash finds them instead of creating twice.
type Journal interface {
	Get(key string) (string, bool)
	Put(key, value string) error
	Keys(prefix string) []string
	// PutMany writes several keys as one durable write (one store commit):
	// all of them or none are recorded when it returns. Steps that record
	// thousands of IDs use it so a run does not pay one fsync per key.
	PutMany(kv map[string]string) error
}

// Inspector reads a gateway back.
type Inspector interface {
	Inspect(ctx context.Context, gateway string) (Inventory, error)
}

// MigrationVerb is a `kong migrations` subcommand.
type MigrationVerb string

const (
	MigrateUp     MigrationVerb = "up"
	MigrateFinish MigrationVerb = "finish"
	MigrateList   MigrationVerb = "list"
)

// MigrationResult is a migration run as the bot saw it, and the schema as SQL
// reads it afterwards (never trusted from the output alone).
type MigrationResult struct {
	ExitCode int         `json:"exit_code"`
	Schema   SchemaState `json:"schema"`
	// Refusal names a known refusal, e.g. "apis-present" for 1.0 `up` while
	// /apis has rows; the step message points to the conversion step.
	Refusal  string `json:"refusal,omitempty"`
	LogLines int    `json:"log_lines"`
	Took     time.Duration
}

// Migrator runs `kong migrations <verb>` of the target version with the
// configured command, streaming output to out.
type Migrator interface {
	Migrate(ctx context.Context, gateway, target string, verb MigrationVerb, out Sink) (MigrationResult, error)
}

// JournaledMigrator is a Migrator that records the migration it starts in
// the step's Journal, so that after a bot restart a migration still running
// is followed instead of started a second time, and a Verify waits for it
// to end before reading the schema. The runbook uses it when the Kong
// adapter offers it.
type JournaledMigrator interface {
	MigrateJournaled(ctx context.Context, gateway, target string, verb MigrationVerb, j Journal, out Sink) (MigrationResult, error)
	// AwaitMigration waits for a migration recorded in j that still runs,
	// streaming its output to out; it reports whether there was one.
	AwaitMigration(ctx context.Context, gateway, target string, verb MigrationVerb, j Journal, out Sink) (bool, error)
}

// Terminator switches the global request-termination plugin on and off,
// through the right node for the gateway's current generations, and verifies
// it with probes through every proxy of every version.
type Terminator interface {
	// EnableTermination creates (or finds, via the journal) the one plugin the
	// bot owns and returns its ID.
	EnableTermination(ctx context.Context, gateway string, j Journal) (pluginID string, err error)
	// DisableTermination removes only the plugin the bot created.
	DisableTermination(ctx context.Context, gateway string, j Journal) error
	// VerifyTermination probes every proxy: want=true expects the configured
	// status everywhere, want=false expects none of them terminating.
	VerifyTermination(ctx context.Context, gateway string, want bool) (Check, error)
}

// ConversionPlan is what converting /apis into Services and Routes would do.
// The same code path produces it for the dry run and the real run.
type ConversionPlan struct {
	Items    []ConversionItem `json:"items"`
	Problems []string         `json:"problems,omitempty"`
}

// ConversionItem is one API and what it becomes.
type ConversionItem struct {
	API      string   `json:"api"`     // API name
	Service  string   `json:"service"` // Service name it becomes
	Route    string   `json:"route"`   // a readable description of the Route
	Plugins  []string `json:"plugins,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Converter turns /apis into Services and Routes (on 0.14.1, before hop 2)
// and, as a separate irreversible step, deletes the APIs.
type Converter interface {
	PlanConversion(ctx context.Context, gateway string) (ConversionPlan, error)
	Convert(ctx context.Context, gateway string, j Journal, out Sink) (Check, error)
	VerifyConversion(ctx context.Context, gateway string, j Journal) (Check, error)
	DeleteAPIs(ctx context.Context, gateway string, j Journal, out Sink) error
}

// Prober runs the configured smoke probes through each proxy of one
// generation (all generations when gen is empty).
type Prober interface {
	Smoke(ctx context.Context, gateway string, gen Generation) (Check, error)
}

// Snapshotter takes a consistent copy of the gateway's datastore before a
// migration; it returns where the archive is.
type Snapshotter interface {
	Snapshot(ctx context.Context, gateway, label string) (archive string, err error)
	// VerifySnapshot reads an archive back whole and checks it against its
	// own manifest (every table's rows and checksum, the schema present).
	// A missing, unreadable, truncated or corrupted archive is an error
	// that names the problem.
	VerifySnapshot(ctx context.Context, gateway, archive string) (SnapshotSummary, error)
}

// SnapshotSummary is a snapshot archive as VerifySnapshot read it back.
type SnapshotSummary struct {
	Archive string           `json:"archive"`
	TakenAt time.Time        `json:"taken_at"`
	Tables  map[string]int64 `json:"tables"` // rows per table
	Rows    int64            `json:"rows"`
	Bytes   int64            `json:"bytes"` // the archive file's size
}

// Preflighter runs the checks that must pass before a hop starts ("1":
// 0.13 → 0.14.1, "2": 0.14.1 → 1.0.3). Approvers' answers (e.g. that a
// custom plugin is compatible with 1.0.3) are read from j; while one is
// missing the Check carries a Pause asking for it.
type Preflighter interface {
	Preflight(ctx context.Context, gateway, hop string, j Journal) (Check, error)
}

// Kong is everything the runbook does to a gateway; package kong implements it.
type Kong interface {
	Inspector
	Migrator
	Terminator
	Converter
	Prober
	Snapshotter
}

// Traffic moves traffic between a gateway's old and new generation; package
// traffic implements it for HAProxy, an exec hook, and manual moves.
type Traffic interface {
	// Shift runs the configured stages from the journal's last good stage to
	// newPct=100, with bake times and health gates, reporting to out. It
	// returns a Check whose OK is false when a gate paused the shift (after
	// rolling back to the last good stage); Missing then holds the figures.
	Shift(ctx context.Context, gateway string, hop string, j Journal, out Sink) (Check, error)
	// RollBack moves all traffic back to the old generation.
	RollBack(ctx context.Context, gateway string, j Journal, out Sink) error
	// VerifyWeights reads the weights back: want is the new generation's share.
	VerifyWeights(ctx context.Context, gateway string, wantNewPct int) (Check, error)
	// VerifyDecommissioned checks the old generation gets no traffic
	// (weight 0, drained, no current sessions).
	VerifyDecommissioned(ctx context.Context, gateway string) (Check, error)
}

// Env is what the runner hands to a step's Do and Verify for one run.
type Env struct {
	Gateway string
	Kong    Kong
	Traffic Traffic
	Journal Journal
	Out     Sink
	Now     func() time.Time
}
