-- An index on each run's last event id, so that a read of the events
-- after a mark (EventsAfter: incremental derivation) seeks only the runs
-- that can hold a newer event instead of comparing the mark with every
-- run listed: with a few hundred runs waiting to be moved, that scan was
-- most of a lone subject's read and a third of a page's. One entry per
-- run, written once with it.
CREATE INDEX event_runs_by_last ON event_runs (last);
