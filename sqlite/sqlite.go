package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/guard"
	"github.com/portrait-dev/portrait/tables"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// The pragmas are in the DSN so that the driver applies them to every
// pooled connection, not only the first. secure_delete zeroes deleted
// content so erased values do not linger in free pages (SR-3).
// wal_autocheckpoint(0): no COMMIT checkpoints; the engine's checkpointer
// does, off the write path (checkpoint.go).
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
	"&_pragma=secure_delete(ON)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(0)"

// DB is a Portrait store in one SQLite file.
//
// Writes go through a pool of one connection whose transactions begin
// IMMEDIATE: SQLite has a single writer anyway, and queueing in-process is
// cheaper than spinning in the busy handler. Reads use their own pool and
// see the last committed state (WAL).
type engine struct {
	tables.DB   // the shared SQL, over the read pool
	path        string
	owner       *ownerLock  // this process's hold on the file (lock.go), until Close
	gen         *generation // the file's generation as this process knows it: owner's, kept past Close
	closed      atomic.Bool // Close has begun
	read        *sql.DB
	write       *sql.DB
	eventWrites rawInserts  // InsertEvents' arguments and scratch (insert.go)
	labels      labelWrites // PutLabels' arguments (labels.go)
	bulk        bulkStmts   // the bulk writes' statements, on write's driver connection (bulk.go)
	savepoint   *sql.Stmt   // on write; begins an Update's savepoint in its group
	release     *sql.Stmt   // on write; releases it
	stmts       sync.Map    // query text → *sql.Stmt on read, prepared on first use
	group       committer   // Update's group commit
	mover       mover       // clusters appended events in the background (move.go)
	ckpt        ckpt        // checkpoints the WAL off the write path (checkpoint.go)
	// head is the log's size as of the last commit that moved it, -1
	// until one did or CommittedLogSize read it: this process owns the
	// file, so no other writer moves it (CommittedLogSize).
	head atomic.Int64
	// front is the committed log's frontier, nil until a transaction
	// learned one (frontier.go).
	front atomic.Pointer[audit.Frontier]
	// writes holds the write path's fixed statements (writeQueries),
	// prepared on write at Open: parsing them on every call was about a
	// third of a concurrent writer's CPU. Read-only after Open.
	writes map[string]*sql.Stmt
}

var (
	_ guard.Engine = (*engine)(nil)
	_ guard.Tx     = (*txn)(nil)
)

// DB is a Portrait store in one SQLite file: the engine behind the guard,
// which checks every grant (invariant 2), with the regulator's tables and
// the WAL housekeeping beside it.
type DB struct {
	*guard.Store
	tables.Regulator
	e *engine
}

var _ portrait.Store = (*DB)(nil)

// Open opens or creates the SQLite database at path and applies any
// migration it lacks.
func Open(ctx context.Context, path string) (*DB, error) {
	e, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	return &DB{Store: guard.New(e), Regulator: e.regulator(), e: e}, nil
}

// TruncateWAL copies the write-ahead log into the database file and
// truncates it, so that after an erasure the WAL holds no old page images
// (SR-3). Erasure calls it through rights.WALTruncater.
func (db *DB) TruncateWAL(ctx context.Context) error { return db.e.truncateWAL(ctx) }

// CommittedLogSize implements audit.CommittedSizer: the audit log's size
// as of this process's last commit that moved it, kept in memory, so that
// a decision asking how far the log reaches (apply's marks) reads no row.
// One process owns a SQLite store, so only its own commits move the head.
// Nothing that checks the log uses it: LogSize still reads the log_head
// row, and a transaction reads it once, so a head wound back behind the
// process's back is found by every check (storetest's tamper suite).
func (db *DB) CommittedLogSize(ctx context.Context) (int64, error) {
	if n := db.e.head.Load(); n >= 0 {
		return n, nil
	}
	n, err := db.e.LogSize(ctx)
	if err != nil {
		return 0, err
	}
	// A commit that moved the head since the read has stored its size,
	// which must win over the one read.
	db.e.head.CompareAndSwap(-1, n)
	return n, nil
}

func open(ctx context.Context, path string) (*engine, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil, fmt.Errorf("open sqlite %q: want the path of a database file (an in-memory database cannot be shared by the read and write pools)", path)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite %q: the path must not contain '?'; Portrait sets the connection options itself", path)
	}
	owner, err := lock(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := private(path); err != nil {
		unlock(&owner)
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := &engine{path: path, owner: owner, gen: &owner.gen}
	db.DB = shared(reads{db})
	db.group.maxGroup, db.group.groupWork, db.group.linger = maxGroup, groupWork, linger
	db.group.arrived = make(chan struct{}, 1)
	db.head.Store(-1)
	if db.write, err = sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate"); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.write.SetMaxOpenConns(1)
	if db.read, err = sql.Open("sqlite", path+"?"+pragmas); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.read.SetMaxOpenConns(max(4, runtime.NumCPU()))
	if err := db.migrateRetry(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.savepoint, err = db.write.PrepareContext(ctx, `SAVEPOINT member`)
	if err == nil {
		db.release, err = db.write.PrepareContext(ctx, `RELEASE member`)
	}
	// Prepared before Open returns, so before any commit group can hold
	// the one write connection, which a preparation would wait for.
	db.writes = make(map[string]*sql.Stmt, len(writeQueries))
	for _, q := range writeQueries {
		if err != nil {
			break
		}
		db.writes[q], err = db.write.PrepareContext(ctx, q)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: prepare: %w", path, err)
	}
	var pending, runs int64
	if err := db.write.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0), count(*) FROM event_runs`).Scan(&pending, &runs); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.startMover(pending, runs)
	db.startCheckpointer()
	return db, nil
}

// private makes the database file readable by its owner only (0600),
// creating it empty if it does not exist, before SQLite opens it: SQLite
// gives the WAL and shared-memory files it creates next to it the
// database file's own mode, so they follow. Files left wider by an older
// version are narrowed: they hold wrapped keys and sealed personal data,
// and nothing but this process should read them.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}

// migrateRetry runs migrate, trying again while another process holds
// the file: SQLite answers SQLITE_BUSY without calling the busy handler
// when switching a new file to WAL or when it would deadlock, so two
// processes opening one new database can collide here.
func (db *engine) migrateRetry(ctx context.Context) error {
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		err := db.migrate(ctx)
		var e *sqlite.Error
		if err == nil || !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY || wait > 2*time.Second {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// migrate applies the embedded migrations not yet recorded in
// schema_version. It runs in one IMMEDIATE transaction, so two processes
// opening the same new file apply each migration once.
func (db *engine) migrate(ctx context.Context) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := shared(plain{tx}).Migrate(ctx, migrations); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close implements guard.Engine.Close.
//
// It leaves the database file complete, with an empty write-ahead log, so
// that a stopped node's file alone is a whole backup. SQLite checkpoints
// the WAL when the last connection to the file closes, but only that one:
// the write connection, closed while a read connection was still in use
// (a derivation or a sweep still reading as serve stopped), checkpointed
// nothing, and the read connection, closed when its query returned, came
// too late if the process had exited by then, leaving the frames in the
// WAL (the restore tests copied the WAL beside the file for that reason).
// So Close stops the mover and the checkpointer, closes the read pool and
// waits, up to closeWait, for the reads under way to return their
// connections, then runs a TRUNCATE checkpoint on the write connection —
// the only one left, so no reader can keep it from copying every frame —
// and only then closes it.
func (db *engine) Close() error {
	db.closed.Store(true) // the kept generation is no answer any more (generation.go)
	db.mover.end()
	db.ckpt.end()
	var errs []error
	db.stmts.Range(func(_, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		return true
	})
	if db.read != nil {
		errs = append(errs, db.read.Close())
		errs = append(errs, drained(db.read, closeWait))
	}
	if db.write != nil {
		// Waits for the write connection: a commit group under way ends first.
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		errs = append(errs, db.truncateWAL(ctx))
		cancel()
	}
	errs = append(errs, db.bulk.close()) // before write closes their connection
	for _, st := range []*sql.Stmt{db.savepoint, db.release} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, st := range db.writes {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	errs = append(errs, unlock(&db.owner))
	return errors.Join(errs...)
}

// closeWait bounds how long Close waits for reads under way and for the
// write connection before its checkpoint.
var closeWait = 10 * time.Second

// drained waits until every connection of the closed pool p is closed:
// sql.DB.Close closes the idle ones at once and each one in use when its
// query returns it.
func drained(p *sql.DB, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for p.Stats().OpenConnections > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("close: %d read connections still in use after %s; the write-ahead log may keep frames", p.Stats().OpenConnections, wait)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// truncateWAL is DB.TruncateWAL.
func (db *engine) truncateWAL(ctx context.Context) error {
	var busy, logFrames, done int
	if err := db.write.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("truncate wal of %s: %w", db.path, err)
	}
	if busy != 0 {
		return fmt.Errorf("truncate wal of %s: readers kept it busy; retry", db.path)
	}
	return nil
}

// stmt returns the read-pool statement for query, preparing it once:
// parsing SQL was a visible share of a per-subject derivation.
func (db *engine) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (db *engine) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := db.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is QueryRowContext on a prepared statement; a preparation
// error surfaces from Scan, as database/sql does.
func (db *engine) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.stmt(ctx, query)
	if err != nil {
		return db.read.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// Update implements guard.Engine.Update.
//
// SQLite has one writer, so concurrent callers would otherwise queue
// behind each other's commits. Update therefore commits in groups: the
// first caller to find the writer idle leads, and the functions of callers
// that arrive while it works are run one after another in its transaction,
// then committed once. The first function of a transaction runs bare, the
// others each inside their own savepoint: a function that fails or panics
// is rolled back — the first with the whole transaction, which holds
// nothing else yet, a later one to its savepoint — and only its caller
// sees the error (a panic is re-raised in the caller's goroutine); the
// others get nil only once the COMMIT succeeded, and all of them get its
// error if it fails, with nothing stored (invariant 3).
//
// A caller that finds the writer idle does not wait for company. A leader
// whose previous group carried more than one caller lingers briefly
// (linger) for more before it commits, so that under steady concurrent
// load one commit carries several callers' writes.
//
// A nested Update (fn calling Update on the same store) is refused by
// guard.Store, which marks the ctx it hands to fn.
func (db *engine) Update(ctx context.Context, fn func(guard.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{ctx: ctx, fn: fn, wake: make(chan struct{}, 1)}
	db.group.mu.Lock()
	db.group.queue = append(db.group.queue, c)
	lead := !db.group.busy
	db.group.busy = true
	db.group.mu.Unlock()
	if !lead {
		select { // tell a lingering leader; a token already there is enough
		case db.group.arrived <- struct{}{}:
		default:
		}
		<-c.wake // the answer, or the lead handed over
	}
	if !c.done {
		db.lead()
	}
	if c.panicked {
		panic(c.panicValue)
	}
	return c.err
}

// Group commit bounds: a group takes in at most maxGroup functions, and
// stops taking in new ones once it has worked for groupWork, so a caller
// waits for at most about one group before its own begins. A leader whose
// previous group had company waits up to linger for callers to arrive
// once its queue is empty: at 500–1,000 decisions a second a commit then
// carries several of them, and the cost of one COMMIT is shared.
const (
	maxGroup  = 64
	groupWork = 2 * time.Millisecond
	linger    = 200 * time.Microsecond
)

// committer is the queue of Update calls of one DB.
type committer struct {
	mu    sync.Mutex
	queue []*call // waiting, oldest first; queue[0] leads next
	busy  bool    // a leader is running a group; false means queue is empty
	// last is how many callers the previous group took in; written by
	// the leader under mu.
	last int
	// arrived carries a token when a caller queued behind a leader, so
	// that a lingering leader wakes for it. Buffered: one token.
	arrived chan struct{}
	// maxGroup, groupWork and linger are the bounds, fields so tests can
	// change them.
	maxGroup  int
	groupWork time.Duration
	linger    time.Duration
}

// call is one Update waiting for, or holding, its answer. The leader
// writes the answer fields before it sends on wake.
type call struct {
	ctx        context.Context
	fn         func(guard.Tx) error
	wake       chan struct{} // buffered: one send, the answer or the lead
	done       bool          // err and panicked are final
	pending    bool          // fn returned nil and was released: the COMMIT decides
	err        error
	panicked   bool
	panicValue any
}

// pop takes the oldest waiting call, or nil.
func (c *committer) pop() *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return nil
	}
	first := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	return first
}

// group is one transaction shared by the functions of several callers.
type group struct {
	db      *engine
	conn    *sql.Conn
	tx      *sql.Tx // nil before BEGIN and once ended
	members []*call
	// head is the log's size in the transaction, once read (known): its
	// first LogSize or AppendLog reads the log_head row, the later ones
	// of the whole group use and advance this. A member rolled back
	// restores it; the COMMIT publishes it as the committed size.
	head  int64
	known bool
	// front is the frontier of the transaction's log (of size head), or
	// nil if not known: restored, published and dropped with head.
	front *audit.Frontier
	// bumped is set when a member's transaction moved the governance
	// generation; the commit then forgets the process's kept one
	// (generation.go), whether or not the COMMIT succeeded.
	bumped bool
}

// lead runs one group, then answers its members and hands the lead to the
// oldest caller still waiting. The deferred hand-over also runs when a
// function calls runtime.Goexit (t.FailNow), so that no caller waits forever.
func (db *engine) lead() {
	g := &group{db: db}
	defer g.finish()
	db.restartWAL()
	g.run()
}

func (g *group) run() {
	cm := &g.db.group
	cm.mu.Lock()
	limit, work, wait := cm.maxGroup, cm.groupWork, cm.linger
	if cm.last < 2 {
		wait = 0 // the previous group was alone: so is this one, likely
	}
	cm.mu.Unlock()
	var start, until time.Time
	for len(g.members) < limit && (g.tx == nil || time.Since(start) < work) {
		c := cm.pop()
		if c == nil {
			if g.tx == nil || wait <= 0 {
				break
			}
			if until.IsZero() {
				until = time.Now().Add(wait)
			}
			if !g.linger(until) {
				break
			}
			continue
		}
		g.members = append(g.members, c)
		if err := c.ctx.Err(); err != nil {
			c.err, c.done = err, true
			continue
		}
		bare := g.tx == nil
		if bare {
			if err := g.begin(c.ctx); err != nil {
				// The callers still waiting try again under the next lead.
				c.err, c.done = err, true
				return
			}
			if start.IsZero() {
				start = time.Now()
			}
		}
		if !g.step(c, bare) {
			return
		}
	}
	g.commit()
}

// linger waits until a caller queues or until passes; it reports whether
// one did.
func (g *group) linger(until time.Time) bool {
	d := time.Until(until)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-g.db.group.arrived:
		return true
	case <-t.C:
		return false
	}
}

// begin opens a transaction on the group's connection, taken at the
// first begin and held until finish, so that after a failed COMMIT the
// transaction can still be rolled back on it. The transaction outlives
// any one caller's ctx: each function's statements run under its own
// caller's ctx.
func (g *group) begin(ctx context.Context) error {
	if g.conn == nil {
		conn, err := g.db.write.Conn(ctx)
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		g.conn = conn
	}
	tx, err := g.conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	g.tx, g.known, g.front = tx, false, nil
	return nil
}

// step runs c's function: bare if it is the first of its transaction,
// which then holds nothing else, otherwise inside a savepoint. A lone
// caller thus runs without SAVEPOINT and RELEASE, whose page bitmap
// SQLite allocates and frees each time (a quarter of a governed ingest's
// CPU). step reports false if SQLite rolled back the whole transaction
// under a later member, which it does on some errors (SQLITE_INTERRUPT
// from a cancelled ctx mid-write, SQLITE_FULL, IOERR, NOMEM, BUSY): a
// later savepoint statement then finds no transaction.
func (g *group) step(c *call, bare bool) bool {
	ctx := context.WithoutCancel(c.ctx)
	// The two statements every caller but the first runs are prepared once, at Open.
	if !bare {
		if _, err := g.tx.StmtContext(ctx, g.db.savepoint).ExecContext(ctx); err != nil {
			c.err, c.done = fmt.Errorf("begin savepoint: %w", err), true
			g.lost(err)
			return false
		}
	}
	head, known, front := g.head, g.known, g.front
	err := runFn(newTxn(g, g.tx), c)
	if err != nil {
		c.err, c.done = err, true
		g.head, g.known, g.front = head, known, front
		if bare {
			// Nothing but this function's writes is in the transaction:
			// roll it all back; the next member begins another.
			if rerr := g.tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
				c.err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
			}
			g.tx = nil
			return true
		}
		_, rerr := g.tx.ExecContext(ctx, `ROLLBACK TO member`)
		if rerr == nil {
			_, rerr = g.tx.ExecContext(ctx, `RELEASE member`)
		}
		if rerr != nil {
			c.err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
			g.lost(rerr)
			return false
		}
		return true
	}
	if !bare {
		if _, err := g.tx.StmtContext(ctx, g.db.release).ExecContext(ctx); err != nil {
			c.err, c.done = fmt.Errorf("release savepoint: %w", err), true
			g.lost(err)
			return false
		}
	}
	c.pending = true
	return true
}

// runFn runs c.fn, turning a panic into an error and remembering it for
// the caller to re-raise in its own goroutine.
func runFn(tx *txn, c *call) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.panicked, c.panicValue = true, p
			err = fmt.Errorf("update function panicked: %v", p)
		}
	}()
	if err := c.fn(tx); err != nil {
		return err
	}
	// Inside the member's savepoint, so that a failure rolls back its
	// writes with it.
	return tx.settleExpiry(context.WithoutCancel(c.ctx))
}

// lost answers the members whose writes were released into a transaction
// that SQLite has since rolled back, and ends it.
func (g *group) lost(cause error) {
	for _, c := range g.members {
		if c.pending {
			c.pending, c.done = false, true
			c.err = fmt.Errorf("transaction rolled back after an error in another caller's update of the same commit group (%v): nothing was stored; retry", cause)
		}
	}
	g.tx.Rollback()
	g.tx = nil
}

// commit commits the group. A failed COMMIT (a deferred constraint, a full
// disk) may leave the transaction open on the connection, so it is rolled
// back there before the connection is reused. A commit that moved the log
// publishes its size (engine.head) before any member is answered, so a
// caller that appended and then reads the size sees its own records.
func (g *group) commit() {
	if g.tx == nil {
		return
	}
	err := g.tx.Commit()
	g.tx = nil
	if err != nil {
		g.conn.ExecContext(context.Background(), `ROLLBACK`)
		err = fmt.Errorf("commit: %w", err)
	} else if g.known {
		g.db.head.Store(g.head)
		g.publishFrontier()
	}
	if g.bumped {
		g.db.gen.forget()
		g.bumped = false
	}
	for _, c := range g.members {
		if c.pending {
			c.pending, c.done, c.err = false, true, err
		}
	}
}

// bump notes that a member's transaction moved the governance generation.
func (g *group) bump() { g.bumped = true }

// finish ends whatever run left open, answers every member and hands the
// lead on.
func (g *group) finish() {
	if g.tx != nil {
		g.tx.Rollback()
	}
	if g.conn != nil {
		g.conn.Close()
	}
	for _, c := range g.members {
		if !c.done {
			c.pending, c.done = false, true
			c.err = errors.New("update abandoned: a function in its commit group exited its goroutine (runtime.Goexit); nothing was stored")
		}
	}
	cm := &g.db.group
	cm.mu.Lock()
	cm.last = len(g.members)
	var next *call
	if len(cm.queue) > 0 {
		next = cm.queue[0]
	} else {
		cm.busy = false
	}
	cm.mu.Unlock()
	for _, c := range g.members {
		c.wake <- struct{}{}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}

// txn is one write transaction (guard.Tx): the shared SQL over it, and
// the writes that are SQLite's own.
type txn struct {
	tables.Tx
	db *engine
	g  *group // the commit group whose transaction this is
	tx *sql.Tx
	// expiry holds the eventKey of each subject whose clustered events
	// this member rewrote or deleted: its row of event_expiry is
	// recomputed once, when the member's function returns (expiry.go).
	expiry map[string]any
}

func newTxn(g *group, tx *sql.Tx) *txn {
	t := &txn{db: g.db, g: g, tx: tx}
	// A member that moves the generation has the group forget the kept
	// one after its COMMIT (generation.go).
	t.Tx = tables.Tx{DB: shared(prepared{t}), Bumped: g.bump}
	return t
}

// querier is what *sql.DB and *sql.Tx share, so that reads run the same
// inside and outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nanos stores t as UTC unix nanoseconds; the zero time is NULL.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func isUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}
