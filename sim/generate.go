package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The generator lays out a deterministic account from the seed — users, tokens,
// workspaces and their metadata, connectors, streams — and schedules the history's user
// actions (backfills of new streams, manual processes, reruns of failures, disabling,
// renames). It then runs the event engine from the start of the history window to Now,
// so the jobs, their lifecycle and the streams' last-run fields come from the same code
// that serves requests.

// Actions of the generated history.
const (
	actProcess uint8 = iota
	actRerunFailed
	actDisable
	actEnable
	actRename
)

type histAction struct {
	kind   uint8
	stream int32
	user   int32
	from   int32 // days, for actProcess
	to     int32
	name   string // for actRename
}

// historyDays is the length of the history window that gives about jobsPerStream jobs
// per stream: a stream has about one scheduled job per day it is enabled, plus
// backfills, manual processes and reruns (see TestGenerateJobsPerStream).
func historyDays(jobsPerStream int) int32 {
	if jobsPerStream <= 0 {
		return 0
	}
	return int32(math.Max(1, math.Round((float64(jobsPerStream)-1.5)/0.83)))
}

func generate(o Options, nowMs int64) *State {
	st := &State{
		opts:       o,
		seed:       mix(uint64(o.Seed) ^ 0xd47a0a4a),
		wsByID:     map[int64]*workspace{},
		streamByID: map[int64]int32{},
		connByID:   map[int64]*connector{},
	}
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0xacc0))
	H := historyDays(o.JobsPerStream)
	today := int32(floorDiv(nowMs, dayMs))
	t0 := nowMs - int64(H)*dayMs
	// Entity history is anchored to the start of today (UTC), not to Now, so metadata is
	// the same for every start time within a day.
	anchor := int64(today) * dayMs

	st.genUsers(r, o.Tokens)
	st.genConnectors()
	st.genWorkspaces(r, o.Workspaces, anchor)
	st.genTokens(o)
	st.genStreams(r, o.Streams, anchor, t0, nowMs, H)
	st.nextJobID = 360_000_000 + r.Int64N(1_000_000)
	st.nextEntityID = 700_000 + r.Int64N(10_000)

	// Run the history: from the window's start to Now.
	st.now = t0
	st.advanceTo(nowMs)
	return st
}

var (
	firstNames = []string{"Jane", "Omar", "Priya", "Lukas", "Mei", "Carlos", "Aisha", "Tom", "Sofia", "Kenji", "Nora", "David"}
	lastNames  = []string{"Analyst", "Haddad", "Raman", "Becker", "Chen", "Ortega", "Bello", "Walsh", "Rossi", "Sato", "Lind", "Cohen"}
)

func (st *State) genUsers(r *rand.Rand, tokens int) {
	n := max(8, tokens+2)
	id := int64(55000 + r.IntN(500))
	for i := range n {
		id += 1 + r.Int64N(300)
		name := firstNames[i%len(firstNames)] + " " + lastNames[(i*7+r.IntN(3))%len(lastNames)]
		if i >= len(firstNames) {
			name += " " + strconv.Itoa(i/len(firstNames)+1)
		}
		st.users = append(st.users, user{id: id, name: name})
	}
}

// genTokens makes the user tokens. Token 1 sees every workspace; token k>1 sees about
// 60% of them, always one it shares with token 1 and (with 2+ workspaces) never all.
func (st *State) genTokens(o Options) {
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x70ce))
	for k := 1; k <= o.Tokens; k++ {
		b := make([]byte, 16)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		secret := fmt.Sprintf("dato-api-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		// A given secret replaces the drawn one after the draw, so the account stays the same.
		if k <= len(o.TokenValues) && o.TokenValues[k-1] != "" {
			v := o.TokenValues[k-1]
			if !slices.ContainsFunc(st.tokens, func(t *token) bool { return t.secret == v }) {
				secret = v
			}
		}
		t := &token{index: k, secret: secret, user: int32(k - 1), visible: map[int64]bool{}}
		t.viewer = o.ViewerTokens && k > 1
		W := len(st.workspaces)
		for _, ws := range st.workspaces {
			if k == 1 || unit(st.hash(uint64(k), uint64(ws.id))) < 0.6 {
				t.visible[ws.id] = true
			}
		}
		if k > 1 {
			t.visible[st.workspaces[(k-2)%W].id] = true
			if W >= 2 && len(t.visible) == W {
				delete(t.visible, st.workspaces[(k-1)%W].id)
			}
		}
		st.tokens = append(st.tokens, t)
	}
}

var standardMappings = map[string][][3]string{
	"analytics": {
		{"ga:date", "DAY", "DIMENSION"}, {"ga:campaign", "CAMPAIGN_NAME", "DIMENSION"},
		{"ga:source", "SITE_NAME", "DIMENSION"}, {"ga:sessions", "SESSIONS", "MEASUREMENT"},
		{"ga:goalCompletionsAll", "CONVERSIONS", "MEASUREMENT"},
	},
	"ads": {
		{"date_start", "DAY", "DIMENSION"}, {"campaign_id", "CAMPAIGN_KEY", "DIMENSION"},
		{"campaign_name", "CAMPAIGN_NAME", "DIMENSION"}, {"adset_name", "MEDIA_BUY_NAME", "DIMENSION"},
		{"impressions", "DELIVERY_IMPRESSIONS", "MEASUREMENT"}, {"clicks", "DELIVERY_CLICKS", "MEASUREMENT"},
		{"spend", "MEDIA_COST", "MEASUREMENT"},
	},
	"file": {
		{"Date", "DAY", "DIMENSION"}, {"Campaign", "CAMPAIGN_NAME", "DIMENSION"},
		{"Placement", "MEDIA_BUY_NAME", "DIMENSION"}, {"Impressions", "DELIVERY_IMPRESSIONS", "MEASUREMENT"},
		{"Clicks", "DELIVERY_CLICKS", "MEASUREMENT"}, {"Media Cost", "MEDIA_COST", "MEASUREMENT"},
	},
}

// connectorSeeds are the data sources, how common each is among generated streams, and
// which mapping template they use.
var connectorSeeds = []struct {
	c      connector
	weight int
	kind   string
}{
	{connector{id: 412, name: "Google Analytics", displayName: "Google Analytics", category: "Web Analytics", templateID: 27259}, 18, "analytics"},
	{connector{id: 415, name: "Google Analytics (Manual Mapping)", displayName: "Google Analytics", category: "Web Analytics", templateID: 27260}, 5, "analytics"},
	{connector{id: 1010, name: "Facebook-Ads", displayName: "Facebook Ads", category: "Social", templateID: 23743}, 20, "ads"},
	{connector{id: 1020, name: "Google AdWords", displayName: "Google Ads", category: "Search", templateID: 23809}, 18, "ads"},
	{connector{id: 1030, name: "Bing Ads", displayName: "Microsoft Advertising", category: "Search", templateID: 23250}, 8, "ads"},
	{connector{id: 1050, name: "DoubleClick Campaign Manager", displayName: "Campaign Manager 360", category: "Ad Server", templateID: 24410}, 8, "ads"},
	{connector{id: 2001, name: "TotalConnect", displayName: "TotalConnect", category: "Files", totalConnect: true}, 23, "file"},
}

func (st *State) genConnectors() {
	for _, cs := range connectorSeeds {
		c := cs.c
		c.fields = standardMappings[cs.kind]
		st.connectors = append(st.connectors, &c)
		st.connByID[c.id] = &c
	}
}

func (st *State) pickConnector(r *rand.Rand) *connector {
	total := 0
	for _, cs := range connectorSeeds {
		total += cs.weight
	}
	n := r.IntN(total)
	for i, cs := range connectorSeeds {
		if n < cs.weight {
			return st.connectors[i]
		}
		n -= cs.weight
	}
	return st.connectors[0]
}

var (
	wsRegions   = []string{"NA", "EMEA", "APAC", "LATAM", "Global", "UK", "DACH", "Nordics"}
	wsFunctions = []string{"Paid Media", "Social", "Search", "Brand Awareness", "Performance", "Programmatic", "Retail Media", "Analytics"}
	brands      = []string{"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell", "Wonka", "Cyberdyne"}
	markets     = []string{"US", "CA", "UK", "DE", "FR", "ES", "IT", "JP", "AU", "BR", "MX", "NL", "SE", "IN"}
	dimNames    = []string{"Market", "Business Unit", "Product Line", "Agency", "Objective"}
	hdNames     = []string{"Channel Group", "Market", "Brand", "Funnel Stage", "Product"}
	hdValues    = map[string][]string{
		"Channel Group": {"Search", "Social", "Display", "Video"},
		"Market":        {"North America", "Europe", "Asia Pacific"},
		"Brand":         {"Acme", "Globex", "Other"},
		"Funnel Stage":  {"Awareness", "Consideration", "Conversion"},
		"Product":       {"Core", "Premium", "Accessories"},
	}
	calcSeeds = [][3]string{
		{"CTR", "CALC_CTR", "DELIVERY_CLICKS / DELIVERY_IMPRESSIONS"},
		{"CPC", "CALC_CPC", "MEDIA_COST / DELIVERY_CLICKS"},
		{"CPM", "CALC_CPM", "MEDIA_COST / DELIVERY_IMPRESSIONS * 1000"},
		{"CPA", "CALC_CPA", "MEDIA_COST / CONVERSIONS"},
		{"Conversion Rate", "CALC_CVR", "CONVERSIONS / DELIVERY_CLICKS"},
	}
	widgetTypes = []string{"TABLE", "LINE_CHART", "BAR_CHART", "KPI", "PIE_CHART", "PIVOT_TABLE"}
	dashNames   = []string{"Executive Overview", "Campaign Performance", "Channel Mix", "Data Health", "Budget Pacing", "Creative Insights"}
	pageNames   = []string{"Summary", "Trends", "Breakdown", "Details"}
)

// Standard fields every workspace has; the Query API answers the ones marked in query.go.
var (
	standardDims = [][2]string{
		{"DAY", "Day"}, {"DATE", "Date"}, {"BRAND_DATA_SOURCE_INSTANCE", "Data Stream"},
		{"DATA_SOURCE", "Data Source"}, {"WORKSPACE", "Workspace"}, {"CAMPAIGN_KEY", "Campaign Key"},
		{"CAMPAIGN_NAME", "Campaign Name"}, {"SITE_NAME", "Site Name"}, {"MEDIA_BUY_KEY", "Media Buy Key"},
		{"MEDIA_BUY_NAME", "Media Buy Name"}, {"CREATIVE_NAME", "Creative Name"}, {"CHANNEL", "Channel"},
	}
	standardMeas = [][2]string{
		{"DELIVERY_IMPRESSIONS", "Impressions"}, {"DELIVERY_CLICKS", "Clicks"}, {"MEDIA_COST", "Cost"},
		{"CONVERSIONS", "Conversions"}, {"SESSIONS", "Sessions"}, {"VIDEO_VIEWS", "Video Views"},
		{"DATA_STREAM_TOTAL_ROWS", "Data Stream Total Rows"},
	}
)

func (st *State) genWorkspaces(r *rand.Rand, n int, anchor int64) {
	id := int64(27000 + r.IntN(400))
	seen := map[string]int{}
	entity := int64(400_000 + r.IntN(10_000))
	nextID := func() int64 { entity += 1 + r.Int64N(9); return entity }
	nu := int32(len(st.users))
	for i := range n {
		id += 1 + r.Int64N(900)
		name := wsRegions[r.IntN(len(wsRegions))] + " - " + wsFunctions[r.IntN(len(wsFunctions))]
		if seen[name]++; seen[name] > 1 {
			name += " " + strconv.Itoa(seen[name])
		}
		created := anchor - (200+r.Int64N(1300))*dayMs - r.Int64N(dayMs)
		updated := created + r.Int64N(anchor-created)
		ws := &workspace{
			id: id, name: name, accountID: 1021, verticalID: 1 + r.Int64N(30),
			colorSchemeID: 1 + r.Int64N(10), currencyID: 1 + r.Int64N(5), accountCurrencyID: 1,
			cultureID: 1 + r.Int64N(8), timezoneID: 1 + r.Int64N(60), dashboardThemeID: 1 + r.Int64N(4),
			hist: history{createUser: r.Int32N(nu), updateUser: r.Int32N(nu), createTime: created, updateTime: updated},
		}
		for f := range ws.flags {
			ws.flags[f] = r.IntN(3) == 0
		}
		ws.flags[flagExecutive] = false
		if i == n-1 && n >= 3 {
			ws.flags[flagExecutive] = true
			for _, o := range st.workspaces[:2] {
				ws.subWorkspaces = append(ws.subWorkspaces, o.id)
			}
		}
		h := func() history {
			c := created + r.Int64N(anchor-created)
			return history{createUser: r.Int32N(nu), updateUser: r.Int32N(nu), createTime: c, updateTime: c + r.Int64N(anchor-c+1)}
		}
		for _, d := range standardDims {
			ws.dims = append(ws.dims, field{id: nextID(), systemName: d[0], displayName: d[1], kind: "DIMENSION", dataType: "STRING", hist: history{createUser: ws.hist.createUser, updateUser: ws.hist.createUser, createTime: created, updateTime: created}})
		}
		for k, p := range r.Perm(len(dimNames))[:r.IntN(4)] {
			ws.dims = append(ws.dims, field{id: nextID(), systemName: "CUSTOM_DIM_" + strconv.Itoa(k+1), displayName: dimNames[p], kind: "DIMENSION", dataType: "STRING", custom: true, hist: h()})
		}
		for _, m := range standardMeas {
			ws.meas = append(ws.meas, field{id: nextID(), systemName: m[0], displayName: m[1], kind: "MEASUREMENT", dataType: "NUMBER", hist: history{createUser: ws.hist.createUser, updateUser: ws.hist.createUser, createTime: created, updateTime: created}})
		}
		for k := range r.IntN(3) {
			ws.meas = append(ws.meas, field{id: nextID(), systemName: "CUSTOM_MEASUREMENT_" + strconv.Itoa(k+1), displayName: []string{"Budget", "Target CPA", "Leads"}[k], kind: "MEASUREMENT", dataType: "NUMBER", custom: true, hist: h()})
		}
		for _, p := range r.Perm(len(hdNames))[:2+r.IntN(3)] {
			hd := harmonizedDim{id: nextID(), name: hdNames[p], description: "Harmonizes " + strings.ToLower(hdNames[p]) + " across data streams", values: hdValues[hdNames[p]], hist: h()}
			ws.harmonized = append(ws.harmonized, hd)
			for k := range 1 + r.IntN(3) {
				v := hd.values[k%len(hd.values)]
				src := []string{"CAMPAIGN_NAME", "SITE_NAME", "MEDIA_BUY_NAME"}[r.IntN(3)]
				ws.patterns = append(ws.patterns, pattern{
					id: nextID(), harmonizedDimID: hd.id, name: hd.name + ": " + v, sourceDimension: src,
					expression: "(?i).*" + strings.ToLower(strings.ReplaceAll(v, " ", "_")) + ".*", value: v, hist: h(),
				})
			}
		}
		for _, p := range r.Perm(len(calcSeeds))[:2+r.IntN(4)] {
			c := calcMeasurement{id: nextID(), name: calcSeeds[p][0], systemName: calcSeeds[p][1], formula: calcSeeds[p][2], hist: h()}
			if i > 0 && r.IntN(5) == 0 {
				for _, oc := range st.workspaces[0].calcs {
					if oc.systemName == c.systemName {
						c.originalID = oc.id
					}
				}
			}
			ws.calcs = append(ws.calcs, c)
		}
		for _, p := range r.Perm(len(dashNames))[:1+r.IntN(4)] {
			d := dashboard{id: nextID(), name: dashNames[p], hist: h()}
			for pg := range 1 + r.IntN(3) {
				page := dashPage{id: nextID(), name: pageNames[pg]}
				for range 2 + r.IntN(5) {
					t := widgetTypes[r.IntN(len(widgetTypes))]
					page.widgets = append(page.widgets, widget{id: nextID(), name: strings.ReplaceAll(strings.ToLower(t), "_", " ") + " " + strconv.Itoa(len(page.widgets)+1), typ: t})
				}
				d.pages = append(d.pages, page)
			}
			ws.dashboards = append(ws.dashboards, d)
		}
		st.workspaces = append(st.workspaces, ws)
		st.wsByID[id] = ws
	}
}

func (st *State) genStreams(r *rand.Rand, n int, anchor, t0, nowMs int64, H int32) {
	type draft struct {
		s       *stream
		created int64
	}
	W := len(st.workspaces)
	weights := make([]float64, W)
	total := 0.0
	for i := range weights {
		weights[i] = 0.5 + r.Float64()
		total += weights[i]
	}
	nu := int32(len(st.users))
	drafts := make([]draft, 0, n)
	authIDs := map[[2]int64]int64{}
	nextAuth := int64(88000 + r.IntN(1000))
	for range n {
		x := r.Float64() * total
		wi := 0
		for wi < W-1 && x >= weights[wi] {
			x -= weights[wi]
			wi++
		}
		ws := st.workspaces[wi]
		c := st.pickConnector(r)
		var created int64
		if H == 0 || r.IntN(4) != 0 {
			created = t0 - (1+r.Int64N(600))*dayMs - r.Int64N(dayMs)
			if created < ws.hist.createTime {
				created = ws.hist.createTime + r.Int64N(dayMs)
			}
		} else {
			created = t0 + r.Int64N(max(1, nowMs-t0-2*3600_000))
		}
		key := [2]int64{ws.id, c.id}
		if _, ok := authIDs[key]; !ok || r.IntN(4) == 0 {
			nextAuth += 1 + r.Int64N(50)
			authIDs[key] = nextAuth
		}
		s := &stream{
			ws: ws, source: c, authID: authIDs[key], enabled: true, templateID: c.templateID,
			retrievalHour: int16(r.IntN(24)), schedMin: int32(r.IntN(60)), channelID: 1 + r.Int64N(12),
			running: -1, rowsBase: int64(math.Exp(math.Log(50) + r.Float64()*(math.Log(50000)-math.Log(50)))),
			imprPerRow: 5 + r.Int32N(195), ctrMilli: 2 + r.Int32N(38), cpmCents: 100 + r.Int32N(1900),
		}
		s.hist = history{createUser: r.Int32N(nu), createTime: created}
		s.hist.updateUser = s.hist.createUser
		s.hist.updateTime = created
		if created < t0 && r.IntN(3) == 0 {
			s.hist.updateTime = created + r.Int64N(t0-created)
			s.hist.updateUser = r.Int32N(nu)
		}
		switch x := r.IntN(100); {
		case x < 78:
			s.failP = 0.02
		case x < 95:
			s.failP = 0.2
		default:
			s.failP = 0.05
			if H > 0 {
				s.brokenFrom = int32(floorDiv(t0, dayMs)) + r.Int32N(H+1)
			}
		}
		s.runOnlyAsPartOfWorkflow = r.IntN(33) == 0
		if r.IntN(5) == 0 {
			s.customAttrs[0] = []string{"Team A", "Team B", "Agency X"}[r.IntN(3)]
		}
		if r.IntN(8) == 0 {
			s.customAttrs[2] = "PO-" + strconv.Itoa(1000+r.IntN(9000))
		}
		drafts = append(drafts, draft{s, created})
	}
	// Ids grow with creation time, as the real ones do.
	sort.SliceStable(drafts, func(i, j int) bool { return drafts[i].created < drafts[j].created })
	id := int64(3_900_000 + r.IntN(50_000))
	names := map[string]int{}
	for i, d := range drafts {
		s := d.s
		id += 1 + r.Int64N(400)
		s.id = id
		base := s.source.displayName + " - " + brands[r.IntN(len(brands))] + " " + markets[r.IntN(len(markets))]
		if s.source.totalConnect {
			base = "TotalConnect - " + brands[r.IntN(len(brands))] + " " + []string{"Offline Sales", "TV Plan", "Affiliate", "CRM Export", "Budget Sheet"}[r.IntN(5)]
		}
		if names[base]++; names[base] > 1 {
			base += " (" + strconv.Itoa(names[base]) + ")"
		}
		s.name = base
		s.config = st.genConfig(r, s)
		si := int32(i)
		st.streams = append(st.streams, s)
		st.streamByID[s.id] = si
		s.ws.streams = append(s.ws.streams, si)
		// Parent instances point to an older stream of the same source in the workspace.
		if r.IntN(10) == 0 {
			for _, o := range s.ws.streams[:len(s.ws.streams)-1] {
				if st.streams[o].source == s.source {
					s.parentInstanceID = st.streams[o].id
					break
				}
			}
		}
		st.planHistory(r, si, d.created, t0, nowMs)
	}
	st.nextStreamID = id
}

func (st *State) genConfig(r *rand.Rand, s *stream) map[string]json.RawMessage {
	cfg := map[string]json.RawMessage{}
	q := func(v string) json.RawMessage { b, _ := json.Marshal(v); return b }
	if s.source.totalConnect {
		cfg["fileNamePattern"] = q(strings.ToLower(strings.NewReplacer(" - ", "_", " ", "_", "-", "").Replace(s.name)) + "_*.csv")
		cfg["delimiter"] = q(",")
		cfg["dateFormat"] = q("yyyy-MM-dd")
	} else {
		acct := strconv.FormatInt(100_000_000+r.Int64N(900_000_000), 10)
		cfg["externalIdentifier"] = q(acct)
		cfg["account_id"] = q(acct)
	}
	cfg["mapping"] = st.defaultMapping(s)
	return cfg
}

// defaultMapping is the stream's mapping object, as GET …/mapping answers it and as it
// is embedded in the stream's config.
func (st *State) defaultMapping(s *stream) json.RawMessage {
	type mf struct {
		SourceField string `json:"sourceField"`
		TargetField string `json:"targetField"`
		Type        string `json:"type"`
	}
	m := struct {
		DataStreamID int64 `json:"dataStreamId"`
		Fields       []mf  `json:"fields"`
	}{DataStreamID: s.id}
	for _, f := range s.source.fields {
		m.Fields = append(m.Fields, mf{f[0], f[1], f[2]})
	}
	b, _ := json.Marshal(m)
	return b
}

// planHistory queues the stream's daily runs and the user actions of its history.
func (st *State) planHistory(r *rand.Rand, si int32, created, t0, nowMs int64) {
	s := st.streams[si]
	first := max(created, t0)
	st.queueSchedule(si, first)
	if nowMs <= t0 {
		return
	}
	if created >= t0 {
		// A stream created in the window backfills 30 days right away.
		day := int32(floorDiv(created, dayMs))
		st.pushAction(created+(1+r.Int64N(30))*60_000, histAction{kind: actProcess, stream: si, user: s.hist.createUser, from: day - 30, to: day - 1})
	}
	st.planActions(r, si, first, nowMs)
	// About one stream in eight was reprocessed (3–6 chunks) in the last 45 minutes, so
	// an account starts with some jobs PENDING and IN_PROGRESS, as real ones do.
	if at := nowMs - r.Int64N(45*60_000); r.IntN(8) == 0 && at > first {
		d := int32(floorDiv(at, dayMs))
		st.pushAction(at, histAction{kind: actProcess, stream: si, user: r.Int32N(int32(len(st.users))), from: d - 21 - r.Int32N(40), to: d - 1})
	}
}

func (st *State) planActions(r *rand.Rand, si int32, from, to int64) {
	s := st.streams[si]
	nu := int32(len(st.users))
	at := func() int64 { return from + r.Int64N(max(1, to-from)) }
	if r.IntN(4) == 0 {
		t := at()
		d := int32(floorDiv(t, dayMs))
		st.pushAction(t, histAction{kind: actProcess, stream: si, user: r.Int32N(nu), from: d - 3 - r.Int32N(33), to: d - 1})
	}
	for range r.IntN(3) {
		st.pushAction(at(), histAction{kind: actRerunFailed, stream: si, user: r.Int32N(nu)})
	}
	if r.IntN(12) == 0 {
		t := at()
		st.pushAction(t, histAction{kind: actDisable, stream: si, user: r.Int32N(nu)})
		if r.IntN(4) == 0 {
			st.pushAction(t+r.Int64N(max(1, to-t)), histAction{kind: actEnable, stream: si, user: r.Int32N(nu)})
		}
	}
	if r.IntN(20) == 0 {
		st.pushAction(at(), histAction{kind: actRename, stream: si, user: r.Int32N(nu), name: s.name + " - " + []string{"old", "v2", "archive", "new"}[r.IntN(4)]})
	}
}

func (st *State) pushAction(at int64, a histAction) {
	st.actions = append(st.actions, a)
	st.events.push(event{at: at, kind: evAction, idx: int32(len(st.actions) - 1)})
}

func (st *State) fireAction(ai int32) {
	a := st.actions[ai]
	s := st.streams[a.stream]
	if s.deleted {
		return
	}
	switch a.kind {
	case actProcess:
		st.createJobs(a.stream, a.from, a.to, originProcess, a.user, true)
	case actRerunFailed:
		// Rerun the failures of the last three days, the latest job of each date range.
		today := int32(floorDiv(st.now, dayMs))
		latest := map[[2]int32]int32{}
		for _, ji := range s.jobs {
			j := &st.jobs[ji]
			if j.dataStart >= today-3 {
				latest[[2]int32{j.dataStart, j.dataEnd}] = ji
			}
		}
		var failed []int32
		for _, ji := range latest {
			if st.jobs[ji].status == stFailure {
				failed = append(failed, ji)
			}
		}
		sort.Slice(failed, func(i, k int) bool { return failed[i] < failed[k] })
		if len(failed) > 0 {
			st.rerun(a.stream, failed, a.user)
		}
	case actDisable:
		s.enabled = false
		st.touch(&s.hist, a.user)
	case actEnable:
		s.enabled = true
		st.touch(&s.hist, a.user)
	case actRename:
		s.name = a.name
		st.touch(&s.hist, a.user)
	}
}
