package datorama

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
)

// Defences of the stats iterator against pages the API (or a flaky network path) gets
// wrong; see allPages.
const (
	// repeatRefetches is how often a page that repeats the previous page is fetched
	// again before the listing fails with ErrInconsistentPages.
	repeatRefetches = 3
	// emptyConfirmations is how often an empty page is fetched again before it is
	// believed to be the end. An empty page can only be legitimate as the first page of
	// a stream without jobs or right after a full page, and a spurious one (a fault)
	// would silently drop the rest of the list; one confirmation makes that need two
	// faults in a row, a second makes it need three.
	emptyConfirmations = 2
)

// Page returns one page of a stream's jobs (stats). pageNumber is 1-based. The API caps
// pageSize at an unknown maximum without saying so, and its order (ascending id within
// a page in the one real sample; across pages unknown) is not relied on. An answer
// larger than pageSize records can be (see jobRecordCeiling) is a *BodyTooLargeError;
// a page with an impossible record is a *RecordError, and one listing an id twice a
// *DuplicateError, each inside a *DecodeError.
//
// Datorama API: POST /v1/data-streams/api/{id}/stats
func (s *JobsService) Page(ctx context.Context, streamID int64, pageSize, pageNumber int) ([]Job, error) {
	if pageSize <= 0 || pageNumber <= 0 {
		return nil, fmt.Errorf("jobs of stream %d: page size %d and number %d must be positive", streamID, pageSize, pageNumber)
	}
	body, err := marshalBody(map[string]int{"pageSize": pageSize, "pageNumber": pageNumber})
	if err != nil {
		return nil, err
	}
	var out []Job
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/data-streams/api/{id}/stats", streamID), body: body, idempotent: true,
		maxBody: pageBound(pageSize, jobRecordCeiling)}
	err = s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecords(b, "jobs", jobOf(streamID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("jobs of stream %d, page %d of size %d: %w", streamID, pageNumber, pageSize, err)
	}
	return out, nil
}

// allPages yields every job of a stream, asking pages 1, 2, … of pageSize. (Only tests
// use it; the crawler has its own reader, and the action engine AllToEmptyPage, since
// neither knows the page-size cap up front.) A page shorter
// than pageSize ends the list; so does an empty page. An error ends the loop as an
// error (the pair nil, err), never as an end of list, and a caller that sees one must
// treat the listing as incomplete.
//
// Each job id is yielded once, even if pages overlap because jobs were added while
// paging (newest-first order shifts older jobs onto later pages). Two faults are
// defended against: a page whose ids all repeat the previous page is fetched again (at
// most repeatRefetches times, then ErrInconsistentPages), and an empty page (the first
// one, or one right after a full page) is fetched again emptyConfirmations times before
// it is believed. So a stream without jobs costs 1+emptyConfirmations calls; a list
// ending exactly on a page boundary costs emptyConfirmations more than its pages.
//
// The API may cap pageSize below the request without saying so. Then every page looks
// short and allPages stops after the first one: it cannot tell a capped page from the last
// page. The caller must pass the cap once it has learned it (for example as the largest
// page length ever seen below the requested size); allPages then returns the complete list.
//
// Datorama API: POST /v1/data-streams/api/{id}/stats
func (s *JobsService) allPages(ctx context.Context, streamID int64, pageSize int) iter.Seq2[*Job, error] {
	return s.all(ctx, streamID, pageSize, true)
}

// AllToEmptyPage is allPages for a caller that has not learned the page-size cap: a short
// page does not end the list, only an empty page, confirmed as allPages confirms it, does.
// Every empty page is confirmed, so it costs one page and the confirmations more than
// allPages when the list ends on a short page. The other defences, the errors and the
// once-per-id promise are allPages'. Because a short page no longer ends it, paging stops
// with an error after maxPagesToEmpty pages rather than follow an API that never
// answers an empty page.
//
// Datorama API: POST /v1/data-streams/api/{id}/stats
func (s *JobsService) AllToEmptyPage(ctx context.Context, streamID int64, pageSize int) iter.Seq2[*Job, error] {
	return s.all(ctx, streamID, pageSize, false)
}

// maxPagesToEmpty bounds AllToEmptyPage, as the action engine's own listing was bounded
// before it used it: only an empty page ends AllToEmptyPage, and a server that never
// answered one, each page differing enough from the last to pass the repeat defence,
// would keep it paging for ever. allPages is left unbounded, as it always was; it ends at
// the first short page.
const maxPagesToEmpty = 10_000

// all is allPages (shortEnds) and AllToEmptyPage (!shortEnds).
func (s *JobsService) all(ctx context.Context, streamID int64, pageSize int, shortEnds bool) iter.Seq2[*Job, error] {
	return func(yield func(*Job, error) bool) {
		seen := make(map[int64]struct{})
		var prev []int64 // ids of the previous page
		for number := 1; ; number++ {
			if !shortEnds && number > maxPagesToEmpty {
				yield(nil, fmt.Errorf("jobs of stream %d: no empty page in %d pages of size %d", streamID, maxPagesToEmpty, pageSize))
				return
			}
			// pageChecked confirms every empty page, wherever it comes, so an empty
			// page after a short one (the end for AllToEmptyPage) is confirmed too.
			page, err := s.pageChecked(ctx, streamID, pageSize, number, prev)
			if err != nil {
				yield(nil, err)
				return
			}
			ids := make([]int64, len(page))
			for i := range page {
				ids[i] = page[i].ID
				if _, dup := seen[page[i].ID]; dup {
					continue
				}
				seen[page[i].ID] = struct{}{}
				if !yield(&page[i], nil) {
					return
				}
			}
			if len(page) == 0 || shortEnds && len(page) < pageSize {
				return
			}
			prev = ids
		}
	}
}

// pageChecked fetches page number and applies allPages' defences; prev holds the ids of
// the previous page (nil for the first). Every empty page is confirmed, not only the
// first: AllToEmptyPage relies on it.
func (s *JobsService) pageChecked(ctx context.Context, streamID int64, pageSize, number int, prev []int64) ([]Job, error) {
	repeats, empties := 0, 0
	for {
		page, err := s.Page(ctx, streamID, pageSize, number)
		if err != nil {
			return nil, err
		}
		switch {
		case len(page) > 0 && repeatsPrevious(page, prev):
			repeats++
			if repeats > repeatRefetches {
				return nil, fmt.Errorf("jobs of stream %d: page %d repeated page %d %d times: %w",
					streamID, number, number-1, repeats, ErrInconsistentPages)
			}
			s.c.log.WarnContext(ctx, "stats page repeats the previous page; fetching it again",
				"stream", streamID, "page", number, "refetch", repeats)
		case len(page) == 0 && empties < emptyConfirmations:
			empties++
			s.c.log.DebugContext(ctx, "empty stats page; confirming",
				"stream", streamID, "page", number, "confirmation", empties)
		default:
			return page, nil
		}
	}
}

// repeatsPrevious reports whether every id of page was on the previous page.
func repeatsPrevious(page []Job, prev []int64) bool {
	if len(prev) == 0 {
		return false
	}
	for i := range page {
		if !slices.Contains(prev, page[i].ID) {
			return false
		}
	}
	return true
}

// Get returns one job.
//
// Datorama API: GET /v1/data-stream-stat/{statId}
func (s *JobsService) Get(ctx context.Context, jobID int64) (*Job, error) {
	var out *Job
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/data-stream-stat/{statId}", jobID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord(b, "job", jobAnswer(jobID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting job %d: %w", jobID, err)
	}
	return out, nil
}

// Process asks the API to process one stream for the days start..end (inclusive); it
// answers the jobs it created, one per ≤10-day chunk. Not idempotent: after an error
// matching ErrOutcomeUnknown the jobs may exist, and the caller reconciles from the
// stream's job list instead of sending again.
//
// Datorama API: POST /v1/data-streams/{id}/process
func (s *JobsService) Process(ctx context.Context, streamID int64, start, end Date) ([]Job, error) {
	if err := checkRange(start, end); err != nil {
		return nil, fmt.Errorf("processing stream %d: %w", streamID, err)
	}
	body, err := marshalBody(map[string]string{"startDate": start.String(), "endDate": end.String()})
	if err != nil {
		return nil, err
	}
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/data-streams/{id}/process", streamID), body: body}
	out, err := s.createJobs(ctx, cl, streamID)
	if err != nil {
		return nil, fmt.Errorf("processing stream %d for %s..%s: %w", streamID, start, end, err)
	}
	return out, nil
}

// ProcessMany asks the API to process several streams for one range. create marks the
// streams' first processing (the API then also builds a dashboard; API streams only).
// The answer's shape is not known for sure (facts file §7): an array of jobs, one job,
// or no body (nil jobs) are accepted. Not idempotent, like Process.
//
// Datorama API: POST /v1/data-streams/process
func (s *JobsService) ProcessMany(ctx context.Context, streamIDs []int64, start, end Date, create bool) ([]Job, error) {
	if len(streamIDs) == 0 {
		return nil, errors.New("processing streams: no stream ids")
	}
	if err := checkRange(start, end); err != nil {
		return nil, fmt.Errorf("processing %d streams: %w", len(streamIDs), err)
	}
	body, err := marshalBody(struct {
		DataStreamIDs []int64 `json:"dataStreamIds"`
		StartDate     string  `json:"startDate"`
		EndDate       string  `json:"endDate"`
		Create        bool    `json:"create"`
	}{streamIDs, start.String(), end.String(), create})
	if err != nil {
		return nil, err
	}
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/data-streams/process"), body: body}
	out, err := s.createJobs(ctx, cl, 0)
	if err != nil {
		return nil, fmt.Errorf("processing %d streams for %s..%s: %w", len(streamIDs), start, end, err)
	}
	return out, nil
}

// Rerun reruns the listed jobs of a stream and returns the jobs the API answers (new
// ids or the same ones: the facts file leaves it open). Not idempotent, like Process.
//
// Datorama API: POST /v1/data-streams/api/{id}/rerun
func (s *JobsService) Rerun(ctx context.Context, streamID int64, jobIDs []int64) ([]Job, error) {
	if len(jobIDs) == 0 {
		return nil, fmt.Errorf("rerunning jobs of stream %d: no job ids", streamID)
	}
	body, err := marshalBody(jobIDs)
	if err != nil {
		return nil, err
	}
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/data-streams/api/{id}/rerun", streamID), body: body}
	out, err := s.createJobs(ctx, cl, streamID)
	if err != nil {
		return nil, fmt.Errorf("rerunning %d jobs of stream %d: %w", len(jobIDs), streamID, err)
	}
	return out, nil
}

// RerunAll reruns every job of a stream. Not idempotent, like Process.
//
// Datorama API: POST /v1/data-streams/api/{id}/rerun-all
func (s *JobsService) RerunAll(ctx context.Context, streamID int64) ([]Job, error) {
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/data-streams/api/{id}/rerun-all", streamID)}
	out, err := s.createJobs(ctx, cl, streamID)
	if err != nil {
		return nil, fmt.Errorf("rerunning all jobs of stream %d: %w", streamID, err)
	}
	return out, nil
}

// createJobs sends a job-creating call and reads its answer: an array of jobs, a single
// job, or no body. streamID, when not 0, is the one stream the jobs must belong to.
func (s *JobsService) createJobs(ctx context.Context, cl *call, streamID int64) ([]Job, error) {
	var out []Job
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		if firstByte(b) == 0 {
			return nil
		}
		out, err = decodeRecordsOrOne(b, "created jobs", jobOf(streamID))
		return err
	})
	return out, err
}

// pageBound is the body bound of a request for n records of at most perRecord bytes.
func pageBound(n int, perRecord int64) int64 {
	return min(max(int64(n)*perRecord, minPageBody), maxPlatformBody)
}

func checkRange(start, end Date) error {
	if start.IsZero() || end.IsZero() {
		return errors.New("start and end dates are required")
	}
	if end.Before(start.Time) {
		return fmt.Errorf("end %s is before start %s", end, start)
	}
	return nil
}

// Download streams the raw data of an API stream's job (a zip file) into w and returns
// the bytes written. The file is never held in memory. A failure after bytes were
// written is retried only when w can be rewound (it has Seek and Truncate, like
// *os.File); otherwise the error comes back with the count written so far.
//
// Datorama API: GET /v1/data-stream-stats/api/{statId}/download
func (s *JobsService) Download(ctx context.Context, jobID int64, w io.Writer) (int64, error) {
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/data-stream-stats/api/{statId}/download", jobID), accept: "*/*", idempotent: true}
	n, err := s.c.doDownload(ctx, cl, w)
	if err != nil {
		return n, fmt.Errorf("downloading job %d: %w", jobID, err)
	}
	return n, nil
}

// DownloadTotalConnect is Download for a TotalConnect (file) stream's job, whose raw
// data is a CSV file (Stream.IsTotalConnect tells which form applies).
//
// Datorama API: GET /v1/data-stream-stats/dynamic/{statId}/download
func (s *JobsService) DownloadTotalConnect(ctx context.Context, jobID int64, w io.Writer) (int64, error) {
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/data-stream-stats/dynamic/{statId}/download", jobID), accept: "*/*", idempotent: true}
	n, err := s.c.doDownload(ctx, cl, w)
	if err != nil {
		return n, fmt.Errorf("downloading TotalConnect job %d: %w", jobID, err)
	}
	return n, nil
}
