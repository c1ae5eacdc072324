"""Every timeout and size the harness uses, in one place.

Each constant carries its own docstring (the string literal under it). Timeouts are upper bounds for
polling loops, never sleeps: a loop returns as soon as its condition holds.
"""

from __future__ import annotations

BROKER_START_TIMEOUT = 10.0
"""Seconds a freshly started private ``redis-server`` has to answer PING."""

BROKER_STOP_TIMEOUT = 5.0
"""Seconds a private ``redis-server`` has to exit after SIGTERM before it is killed."""

# -- a private RabbitMQ node (bench/brokers/rabbitmq.py) ---------------------------------------------
RABBITMQ_START_TIMEOUT = 90.0
"""Seconds a freshly started private RabbitMQ node has to accept an AMQP login.

Generous: the Erlang VM boots RabbitMQ's applications one by one (a few seconds on an idle machine, a
few times that on a 2-core machine shared with other test runs)."""

RABBITMQ_STOP_TIMEOUT = 30.0
"""Seconds a private RabbitMQ node has to stop after SIGTERM (it closes connections and syncs its
message store) before its whole process tree is killed."""

EPMD_START_TIMEOUT = 10.0
"""Seconds the private ``epmd`` (Erlang port mapper) of a RabbitMQ node has to accept connections."""

RABBITMQCTL_TIMEOUT = 60.0
"""Seconds one ``rabbitmqctl`` command against a private node may take (it boots an Erlang VM of its own:
a second or two here, several on a loaded machine)."""

AMQP_CONNECT_TIMEOUT = 1.0
"""Seconds one AMQP connection attempt of the readiness poll may take (the poll retries)."""

# -- workers, results, polling -------------------------------------------------------------------------
WORKER_READY_TIMEOUT = 60.0
"""Seconds a ``celery worker`` has to answer a control ping after it was started.

Generous because prefork forks its children and imports the app before it consumes, and CI machines
are shared and noisy."""

PING_TIMEOUT = 0.5
"""Seconds one control ping waits for replies (the ready loop pings repeatedly)."""

WARM_STOP_TIMEOUT = 15.0
"""Seconds a worker has to finish its current tasks and exit after SIGTERM (warm shutdown)."""

COLD_STOP_TIMEOUT = 5.0
"""Seconds a worker has to exit after SIGQUIT (cold shutdown) before the whole tree is killed."""

KILL_TIMEOUT = 5.0
"""Seconds to wait for the process tree to disappear after SIGKILL."""

RESULT_TIMEOUT = 30.0
"""Seconds a test waits for a task result before it fails."""

POLL_INTERVAL = 0.02
"""Seconds between two checks of a polled condition."""

BEAT_INTERVAL = 0.5
"""Seconds between two runs of the periodic task when the harness starts ``celery beat``."""

WORKER_CONCURRENCY = 2
"""Default concurrency of prefork and threads workers (the machine has 2 cores)."""

GREEN_CONCURRENCY = 100
"""Default concurrency of gevent and eventlet workers: green threads, not processes or OS threads, so the
cores do not bound it; waiting tasks do. 100 lets a worker wait on 100 tasks at once (~5,000/s of
``IO_WAIT_S`` tasks), above the ~1,000/s a worker manages per task on this machine, so the I/O drain
shows Celery's own per-task cost, not the pool's size; it keeps the prefetch window
(``PREFETCH_MULTIPLIER`` x 100 = 400 messages) below a drain round's batch. Celery's docs run these
pools at hundreds to thousands (``-P eventlet -c 1000``); its own default (the CPU count) would make a
green pool as narrow as threads on two cores."""

PREFETCH_MULTIPLIER = 4
"""``worker_prefetch_multiplier`` the harness sets on its fault scenarios' workers (Celery's default, set
explicitly: a worker reserves at most this x its concurrency messages, which bounds what a kill or a
broker restart can find held or lose)."""

DRAIN_TIMEOUT = 300.0
"""Seconds a worker (or a fleet) may take to execute a drain batch, e.g. the no-fault load of 10,000
tasks (a busy 2-core machine manages ~1,000/s; generous for a slow CI runner)."""

POOLS_ALL = ("solo", "prefork", "threads", "gevent", "eventlet")
"""Every pool the harness knows, in the order it runs them."""

GREEN_POOLS = ("gevent", "eventlet")
"""Pools of green threads: optional extras (``pip install -e '.[green]'``), available only where their
package is installed; their workers monkey-patch the standard library at start."""

IO_WAIT_S = 0.02
"""Seconds the I/O-bound probe task (``bench.probes.io_wait``) waits: ``time.sleep``, which gevent and
eventlet patch in their workers, so a green pool runs other tasks meanwhile. 20 ms is a typical remote
call (an HTTP API, a database query): one task at a time drains 50/s at most."""

IO_WAVES = 25
"""Tasks per slot of the pool in one round of the main job's I/O drain (a round queues ``IO_WAVES`` x
concurrency tasks, at most the plan's no-op ``drain_tasks``): ~0.5 s per round whatever the pool, when
the pool's size bounds the rate."""

TEMP_PREFIX = "celery-bench-"
"""Prefix of every temporary directory the harness creates (so a leak check can find strays)."""

RUN_MARKER_ENV = "CELERY_BENCH_RUN"
"""Environment variable set on every child process, holding the harness run id.

The leak checks look for processes that carry it."""

OWNER_MARKER_ENV = "CELERY_BENCH_OWNER"
"""Environment variable set on every child process: ``<pid>:<start time>`` of the harness process that
started it. The next run's stale cleanup (``bench/stale.py``) removes a child only if that process is
gone; a child of a live run (another harness running beside it) is never touched."""

TEST_TASK_DELAY_ENV = "CELERY_BENCH_TEST_TASK_DELAY_S"
"""Test-only: seconds ``bench.probes.noop`` and ``bench.probes.stamp`` sleep before their body when a worker's
environment sets it. ``tests/benchmarks/test_gate.py`` sets it on a nested benchmark run to slow the worker
on purpose and prove the regression gate fails; nothing else sets it, and unset (or empty) it costs one
dict lookup at import."""

GATE_RUN_TIMEOUT = 900.0
"""Seconds one nested benchmark session of the gate's proof (``tests/benchmarks/test_gate.py``: a private
Redis, a worker, the enqueue, producer, drain and open-loop benchmarks of one pool) may take; ~1-2 min on a
busy 2-core machine."""

GATE_POLL = 0.5
"""Seconds between two checks of whether a nested benchmark session has exited."""

OWNER_FILE = ".bench-owner"
"""File written into every ``celery-bench-*`` temp dir: the run id and owner of the run that made it."""

HELPER_EXIT_TIMEOUT = 5.0
"""Seconds multiprocessing's resource tracker (started for the spawned producer processes) has to exit
after the harness did: it exits on its own when its parent's end of the pipe closes, a moment later."""

PARENT_DEATH_TIMEOUT = 15.0
"""Seconds the children of a SIGKILLed harness have to be gone (``PR_SET_PDEATHSIG`` is delivered at
once; the bound covers a loaded 2-core machine reaping a prefork tree)."""

# -- fault scenarios (bench/faults) ------------------------------------------------------------------
FAULT_SETTLE_TIMEOUT = 60.0
"""Seconds a fault scenario's tasks have to run after the fault (recovery included)."""

FAULT_STALL_TIMEOUT = 45.0
"""Seconds a worker has to consume again after its broker came back (longer: it stalled)."""

FAULT_PUBLISH_ERROR_BOUND = 40.0
"""Seconds ``apply_async`` to a down broker may take before the harness calls it hung."""

FAULT_CONCURRENCY = 2
"""Concurrency of the fault scenarios' gevent and eventlet workers (prefork and threads have it by default):
a kill or a stop must meet a run under way, some of its 0.3 s tasks done, one running, more queued; 100
green threads would start all of a scenario's 12 tasks at once and finish them together."""

SYNLOOP_DRAIN_PACE = 0.1
"""Seconds a gevent or eventlet worker on RabbitMQ waits after each delivery with Celery 5.7's defaults: its
``synloop`` drains the event dispatcher's connection after every turn (``_quick_drain``, timeout 0.1 s,
added with that connection's heartbeat by celery#10500) and a turn delivers one message, so it runs at
most ~10 tasks/s. ``broker_heartbeat=0`` turns that drain off."""

PACED_LOAD_TASKS = 40
"""Tasks of the short load that shows :data:`SYNLOOP_DRAIN_PACE` (~4 s at that pace; ~0.2 s without it)."""

FAULT_POLL = 0.05
"""Seconds between two reads of a fault scenario's ledger."""

FAULT_AIM_POLL = 0.01
"""Seconds between two reads while waiting for the moment to inject a fault (a task runs 0.3 s: a
coarser poll would miss the window in which one is running)."""

FAULT_CLOCK_SLACK = 5.0
"""Seconds beyond the visibility timeout a scenario waits for the wall clock to pass it (the wait
itself only polls ``time.time``)."""

CONSUMER_TIMEOUT_MS = 2000
"""RabbitMQ's ``consumer_timeout`` (ms) the consumer-timeout scenario sets on its private node (30 min by
default); its task runs :data:`CONSUMER_TIMEOUT_TASK_SECONDS`, longer."""

CONSUMER_TIMEOUT_TICK_MS = 500
"""RabbitMQ's ``channel_tick_interval`` (ms) during that scenario: how often a channel checks the
timeout (60 s by default, which is why RabbitMQ's docs call values under a minute unsupported)."""

CONSUMER_TIMEOUT_TASK_SECONDS = 6.0
"""Length of the late-acknowledged task that outlives :data:`CONSUMER_TIMEOUT_MS`."""

SHUTDOWN_TASK_SECONDS = 1.5
"""Work of one task of the shutdown scenarios (shorter than :data:`SOFT_SHUTDOWN_TIMEOUT`, so a soft
shutdown lets the running ones finish)."""

SOFT_SHUTDOWN_TIMEOUT = 3.0
"""``worker_soft_shutdown_timeout`` of the soft-shutdown scenarios (Celery's default 0 turns it off)."""

SHUTDOWN_SLACK = 10.0
"""Seconds a worker may take to exit beyond what its shutdown must wait for (the running task's rest for
a warm shutdown, the soft timeout for a soft one, nothing for a cold one): closing the pool and the
connection on a busy 2-core machine."""

SHUTDOWN_EXIT_TIMEOUT = 45.0
"""Seconds the shutdown scenarios wait for a signalled worker to exit before they kill it (and report it
hung)."""

SHUTDOWN_ETA_COUNTDOWN = 60.0
"""Countdown of the ETA task a shutdown scenario leaves reserved (it must outlive the scenario)."""

FAULT_ALIVE_PING = 2.0
"""Seconds a worker has to answer the ping that shows it survived a fault."""

BROWSER_TIMEOUT = 60.0
"""Seconds headless Chromium has to load the HTML report and dump its rendered DOM
(``tests/unit/test_html.py``); a cold start on a loaded 2-core machine takes a few seconds."""

# -- host faults (bench/hostfaults: a compose fleet broken on purpose) ---------------------------------
DOCKER_TIMEOUT = 120.0
"""Seconds one ``docker`` command that changes state (kill, pause, start, network, down) may take."""

DOCKER_QUERY_TIMEOUT = 60.0
"""Seconds one ``docker`` query (version, info, ps, inspect, port) may take on a busy engine."""

DOCKER_UP_TIMEOUT = 900.0
"""Seconds ``docker compose up --build --wait`` may take: a cold image build installs the project from
PyPI (about 30 s here, minutes behind a slow mirror), then the workers' healthchecks."""

HOST_FAULT_START_TIMEOUT = 60.0
"""Seconds the victim host has to start its first task of a scenario."""

HOST_FAULT_RECOVERY_MARGIN = 30.0
"""Seconds past the workers' ``visibility_timeout`` the rest of the fleet has to complete what it can
recover (the restore sweep runs every second in the fleet; the rest is the tasks' own work)."""

HOST_HEAL_TIMEOUT = 60.0
"""Seconds a healed host (restarted, resumed, reconnected) has to answer a control ping again."""

HOST_FAULT_SETTLE_TIMEOUT = 90.0
"""Seconds after healing until nothing of the run is queued, unacknowledged, reserved or running."""

TEST_WORKERS = 2
"""pytest-xdist workers the test suite runs on when no ``-n`` is given (``conftest.py``).

Each is a session of its own with its own private Redis and pool workers. Most of the suite waits (worker
starts, restore sweeps, drains) rather than computes, so two workers halve it on a 2-core machine;
``-n 0`` (or ``-p no:xdist``) runs it serially, ``-n N`` on N workers."""
# -- repeatability (bench/repeat.py, the adaptive rounds of bench/scenarios.py) ------------------------
CONTROL_LOOP_ITERATIONS = 20_000
"""Iterations of the machine control's pure-Python loop (``bench.machine.cpu_us``): ~1-2 ms here."""

CONTROL_REPEATS = 30
"""Timings of that loop whose median is the control's value."""

CONTROL_ROUND_TRIPS = 2_000
"""One-byte pipe round trips whose median is the ``ipc_us`` control (~0.1-0.2 s here)."""

CONTROL_WARMUP_TRIPS = 100
"""Round trips before those, not timed (the child's start and first wake-ups)."""

CONTROL_CHILD_EXIT_TIMEOUT = 5.0
"""Seconds the control's echo child has to exit once its stdin is closed before it is killed."""

REPEAT_RUNS = 5
"""Sessions ``python -m bench repeat`` runs by default (the issue's measure: five quick runs in a row)."""

REPEAT_CV_TARGET = 0.05
"""Most a headline median (enqueue latency, producer and drain rates, open-loop p50) may vary across runs:
the coefficient of variation over ``REPEAT_RUNS`` sessions that ``bench repeat`` holds it to."""

REPEAT_CV_TARGET_TAIL = 0.10
"""The same for a tail figure (open-loop p99), which a few slow tasks move."""

PRECISION_TARGET = 0.025
"""Relative half-width of the 95% interval of a median over rounds (enqueue medians, producer and drain
rates, open-loop p50) at which ``bench run`` stops adding rounds to a step. If runs differed only by
sampling noise, the run-to-run CV would be about half of this (a 95% interval spans ~2 standard errors
each side), so it leaves room for the differences between sessions (a fresh broker and worker, the
machine's load) under ``REPEAT_CV_TARGET``."""

PRECISION_TARGET_TAIL = 0.05
"""The same for the open-loop p99 (median over rounds of each round's p99), against
``REPEAT_CV_TARGET_TAIL``."""

QUICK_BUDGET_S = {"enqueue": 15.0, "producer": 7.0, "drain": 12.0, "io": 5.0, "e2e": 15.0}
"""Seconds each adaptive step of a ``--quick`` run may spend adding rounds (``producer`` per mode,
``drain``, ``io`` (the I/O drain) and ``e2e`` per pool): with the fixed parts, a quick run of the five
pools stays under ~3 minutes on a quiet 2-core machine. A step that runs out of budget before its series
are precise says so in the report."""

FULL_BUDGET_S = {"enqueue": 60.0, "producer": 30.0, "drain": 60.0, "io": 30.0, "e2e": 90.0}
"""The same for a full run (per pool and concurrency for ``drain``, ``io`` and ``e2e``)."""

# -- the main job, the fleet and the load generator (bench/scenarios.py, bench/fleet.py, bench/loadgen.py) ---
CONTROL_TIMEOUT = 5.0
"""Seconds a control command (add/cancel consumer) waits for every chosen worker's reply."""

QUEUE_SWITCH_TIMEOUT = 10.0
"""Seconds a worker has to apply an ``add_consumer`` / ``cancel_consumer`` it already replied to (it applies
it on its event loop's next turn; a gevent or eventlet worker's loop turns at the latest every 2 s, when
its ``drain_events`` times out)."""

DISCOVERY_TIMEOUT = 3.0
"""Seconds a control ping (and each inspect) waits for a fleet's replies (``run --fleet``)."""

E2E_GRACE = 60.0
"""Seconds after the last open-loop arrival that the results still have to arrive."""

CLIENT_CONNECT_TIMEOUT = 5.0
"""Seconds a client app waits to connect to the broker before it reports an error."""

SUBSCRIBE_TIMEOUT = 5.0
"""Seconds the result collector waits for Redis to confirm its pattern subscription."""

COLLECTOR_POLL = 0.05
"""Seconds one pub/sub read of the result collector blocks before it checks whether to stop."""

PROCESS_START_TIMEOUT = 60.0
"""Seconds spawned producer processes have to import Celery, connect and report ready."""

PROCESS_RUN_TIMEOUT = 300.0
"""Seconds spawned producer processes have to send their tasks once told to go."""

PROCESS_STOP_TIMEOUT = 5.0
"""Seconds a spawned producer process has to exit after terminate() before it is killed."""

# -- sweeps (bench/sweep.py, bench/isolated.py) -----------------------------------------------------------
ISOLATED_CELL_TIMEOUT = 600.0
"""Seconds one sweep cell-round run in a child interpreter (a cell without hiredis) may take, from its
start to its exit: a default-sweep cell-round takes ~20-40 s on 2 loaded cores."""

PROBE_DONE_PREFIX = "bench-probe-done-"
"""Pub/sub channel prefix on which a probe task whose result is ignored (a producer under ``--set
task_ignore_result=true``) announces its completion (``bench.probes._announce``, read by
``bench.loadgen.ResultCollector`` next to the result backend's own channels)."""
