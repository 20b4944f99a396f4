package sim

import (
	"encoding/json"
	"sort"
)

// The account is held in compact structs: a million jobs must fit comfortably in
// memory, so a job is a fixed-size value with no pointers or strings, its processLog is
// rendered on demand, and its rows are computed from the stream's daily model.

const dayMs = int64(86400000)

// Job statuses, in the API's spelling.
const (
	stPending uint8 = iota + 1
	stInProgress
	stSuccess
	stFailure
)

var statusNames = [...]string{"", "PENDING", "IN_PROGRESS", "SUCCESS", "FAILURE"}

// How a job came to be.
const (
	originScheduled uint8 = iota
	originProcess
	originRerun
)

type job struct {
	id        int64
	created   int64 // epoch ms the job was queued
	start     int64 // epoch ms; 0 = null
	end       int64 // epoch ms; 0 = null
	stream    int32 // index into State.streams
	dataStart int32 // days since the epoch
	dataEnd   int32
	user      int32 // index into State.users
	status    uint8
	origin    uint8
	reason    uint8 // failure reason index, meaningful for FAILURE
	attempt   uint8 // bumped when a rerun resets the job in place; stale events carry the old value
}

func (j *job) final() bool { return j.status == stSuccess || j.status == stFailure }

// history is the server-managed entity history every platform entity carries.
type history struct {
	createUser int32 // index into State.users
	updateUser int32
	createTime int64 // epoch ms
	updateTime int64
}

type user struct {
	id   int64
	name string
}

type workspace struct {
	id                int64
	name              string
	accountID         int64
	verticalID        int64
	colorSchemeID     int64
	currencyID        int64
	accountCurrencyID int64
	cultureID         int64
	timezoneID        int64
	dashboardThemeID  int64
	subWorkspaces     []int64
	flags             [11]bool // in workspaceFlagNames order
	hist              history

	streams    []int32 // indices into State.streams, ascending id (deleted ones included)
	dims       []field
	meas       []field
	harmonized []harmonizedDim
	patterns   []pattern
	calcs      []calcMeasurement
	dashboards []dashboard
}

var workspaceFlagNames = [11]string{
	"costCenterEnabled", "executiveWorkspace", "customCalendarEnabled", "customLocationEnabled",
	"applyBlindPeriods", "archivingEnabled", "liteConnectEnabled", "workflowsEnabled",
	"actionCenterEnabled", "balanceBudgetToolEnabled", "hourlyProcessingAllowed",
}

const flagExecutive = 1

type field struct {
	id          int64
	systemName  string
	displayName string
	kind        string // "DIMENSION" or "MEASUREMENT"
	dataType    string
	custom      bool
	hist        history
}

type harmonizedDim struct {
	id          int64
	name        string
	description string
	values      []string
	hist        history
}

type pattern struct {
	id              int64
	harmonizedDimID int64
	name            string
	sourceDimension string
	expression      string
	value           string
	hist            history
}

type calcMeasurement struct {
	id         int64
	originalID int64 // 0 = null
	name       string
	systemName string
	formula    string
	hist       history
}

type dashboard struct {
	id    int64
	name  string
	pages []dashPage
	hist  history
}

type dashPage struct {
	id      int64
	name    string
	widgets []widget
}

type widget struct {
	id   int64
	name string
	typ  string
}

// connector is a data source ("connector") a stream reads from.
type connector struct {
	id           int64
	name         string // dataSourceName
	displayName  string // sourceDisplayName
	category     string
	totalConnect bool
	templateID   int64
	fields       [][3]string // mapping template: source field, target system name, kind
}

type stream struct {
	id                      int64
	ws                      *workspace
	name                    string
	source                  *connector
	authID                  int64 // 0 = null
	enabled                 bool
	deleted                 bool
	templateID              int64 // 0 = null
	parentInstanceID        int64 // 0 = null
	runOnlyAsPartOfWorkflow bool
	dataLoadMode            json.RawMessage // nil = null
	retrievalHour           int16           // -1 = null
	retrievalPeriodType     json.RawMessage // nil = null
	channelID               int64
	originalID              int64
	originalDataStreamID    int64
	dataPreviewPageID       int64
	customAttrs             [5]string
	config                  map[string]json.RawMessage // nil = null; "mapping" holds the mapping
	hist                    history

	// Last-run fields, updated when a job finishes.
	lastStatus    uint8 // 0 = never finished
	lastUpdate    int64
	lastRows      int64
	processedRows int64
	lastDataDate  int32 // 0 = none
	hasData       bool

	// Engine state.
	jobs        []int32 // indices into State.jobs, ascending id
	running     int32   // index of the IN_PROGRESS job, -1 = none
	queue       []int32 // PENDING jobs waiting their turn, FIFO
	startQueued bool    // a start event for the queue head is in the event queue
	schedMin    int32   // minute of the day (UTC) of the scheduled daily run
	outcome     int8    // 0 random, 1 always fail, 2 always succeed (Mutate controls)

	// The stream's data model: deterministic per day, see daily.
	failP      float32 // chance a run fails
	brokenFrom int32   // from this day on runs fail with failBroken chance; 0 = never
	rowsBase   int64
	imprPerRow int32
	ctrMilli   int32 // clicks per thousand impressions
	cpmCents   int32 // cost per thousand impressions, in cents
}

// State is the simulator's whole account. Mutate hands it to a function under the
// simulator's lock; its methods are the supported edits. A State must not be kept after
// that function returns.
type State struct {
	opts Options
	seed uint64
	now  int64 // epoch ms the account has been caught up to

	users      []user
	tokens     []*token
	workspaces []*workspace // ascending id
	wsByID     map[int64]*workspace
	streams    []*stream // creation order, deleted ones included
	streamByID map[int64]int32
	jobs       []job // ascending id
	connectors []*connector
	connByID   map[int64]*connector

	events  eventQueue
	actions []histAction

	nextJobID    int64
	nextStreamID int64
	nextEntityID int64
}

type token struct {
	index   int // 1-based
	secret  string
	user    int32
	viewer  bool
	visible map[int64]bool // workspace ids
	rate    tokenRate
}

func (st *State) workspace(id int64) *workspace { return st.wsByID[id] }

// streamOf returns the live (not deleted) stream with id, or nil.
func (st *State) streamOf(id int64) *stream {
	i, ok := st.streamByID[id]
	if !ok {
		return nil
	}
	s := st.streams[i]
	if s.deleted {
		return nil
	}
	return s
}

// jobIndex returns the index of job id in st.jobs, or -1.
func (st *State) jobIndex(id int64) int32 {
	i := sort.Search(len(st.jobs), func(i int) bool { return st.jobs[i].id >= id })
	if i < len(st.jobs) && st.jobs[i].id == id {
		return int32(i)
	}
	return -1
}

func (st *State) newEntityID() int64 {
	st.nextEntityID += 1 + int64(st.hash(uint64(st.nextEntityID), 0xe17)%7)
	return st.nextEntityID
}

func (st *State) hist(at int64, u int32) history {
	return history{createUser: u, updateUser: u, createTime: at, updateTime: at}
}

// touch records an edit of an entity by user u at the current time.
func (st *State) touch(h *history, u int32) {
	h.updateTime = st.now
	h.updateUser = u
}
