-- The gc service's cleanup runs (docs/ARCHITECTURE.md, "Who owns cleanup"): working records,
-- not projections (a rebuild leaves them alone).

-- One row per run, scheduled or on demand (POST /api/gc/runs, berth gc run).
CREATE TABLE gc.runs (
    id          uuid PRIMARY KEY,
    trigger     text        NOT NULL,             -- schedule | api
    actor       text,                             -- who asked (api)
    feed        text,                             -- NULL: every feed
    dry_run     boolean     NOT NULL,
    status      text        NOT NULL,             -- running | succeeded | failed | skipped
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    result      jsonb,                            -- totals and per feed (berth_gc.domain.runs)
    progress    jsonb       NOT NULL DEFAULT '{}', -- {phase: items done} while it runs
    error       text
);
CREATE INDEX runs_started_idx ON gc.runs (started_at DESC);

-- Per store: objects placed before the watermark were judged by a completed sweep, so the next
-- sweep lists only what was placed since (berth_gc.domain.sweep).
CREATE TABLE gc.sweep_marks (
    store     text PRIMARY KEY,
    watermark timestamptz NOT NULL,
    swept_at  timestamptz NOT NULL
);
