"""Each MCP tool's signature, description and hints: what an agent sees in ``tools/list``.

The signatures carry no bodies: ``runner.mcp.server`` registers each under a handler that
runs the ``runner.mcp.tools.Tools`` method of the same name with the arguments the SDK
validated. Imported only by the server, once the SDK is there (pydantic comes with it).
No ``from __future__ import annotations`` here: the SDK reads the annotations as live
objects.
"""

from collections.abc import Callable
from typing import Any

# MCP tool annotations (spec 2025-03-26, ``ToolAnnotations``): hints a client shows or uses
# to ask the user before a call. The READ tools only read the repository and the
# recorded state (status and history also close the rows of runs whose process is gone,
# which is bookkeeping, not a change a user made). apply, execute_workflow and
# execute_task run the manifests' commands: they may change or delete files and reach the
# network, and a failed step runs again on the next call, so they are neither read-only
# nor idempotent.
READ = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
RUN = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}
# create_project only adds files (it never replaces one); the same call again is refused
# (the name is taken) and changes nothing.
CREATE = {
    "readOnlyHint": False,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
# manage_project's archive removes a project's files from the work tree (they are kept in
# .orch/archive/); archiving or restoring the same project twice is refused the second time.
MANAGE = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": True,
    "openWorldHint": False,
}


def specs(Context: Any) -> list[tuple[Callable[..., Any], dict[str, bool]]]:
    """Every tool, in the order ``tools/list`` gives them: its signature (the SDK builds the
    input schema from the annotations, the description from the docstring) and its hints.
    ``Context``: the SDK's class, for the running tools' ``ctx`` (progress notifications).
    Annotations are real types here (pydantic reads them), so they are evaluated in this
    scope rather than as strings."""
    from typing import Annotated, Literal

    from pydantic import Field

    Names = Annotated[
        list[str] | None,
        Field(description="workflow names to act on (default: all)"),
    ]
    Project = Annotated[str | None, Field(description="only the workflows of this project")]
    Env = Annotated[
        str | None, Field(description="project environment whose params to use, e.g. dev, prod")
    ]
    Force = Annotated[
        list[str] | None,
        Field(description="steps to treat as changed, as WORKFLOW/STEP or STEP"),
    ]
    ForceAll = Annotated[bool, Field(description="treat every selected step as changed")]
    NoCache = Annotated[
        bool, Field(description="run steps even where the result cache holds their result")
    ]
    Params = Annotated[
        dict[str, str | int | float | bool | list[Any] | dict[str, Any]] | None,
        Field(
            description="workflow params to set for this run, as --param KEY=VALUE: text is "
            "typed as the param's value in the manifest; other JSON values are used as given"
        ),
    ]
    Workflow = Annotated[str, Field(description="workflow name")]
    Step = Annotated[str, Field(description="step name within the workflow")]

    def validate(
        paths: Annotated[
            list[str] | None,
            Field(description="extra manifest files to check, relative to the repository root"),
        ] = None,
    ) -> dict[str, Any]:
        """Check every manifest in the repository. Returns ok, and each problem as
        path/line/col/where/message/hint."""

    def plan(
        workflows: Names = None,
        project: Project = None,
        env: Env = None,
        force: Force = None,
        force_all: ForceAll = False,
        params: Params = None,
        no_cache: NoCache = False,
    ) -> dict[str, Any]:
        """What apply would run, per step: action (run, restore, may-run, up-to-date) and
        the reasons (never ran, input changed: FILE, definition changed, upstream will run:
        STEP, will restore: cached result from WHEN (WHERE), ...). Runs nothing."""

    def apply(
        workflows: Names = None,
        project: Project = None,
        env: Env = None,
        force: Force = None,
        force_all: ForceAll = False,
        params: Params = None,
        jobs: Annotated[int | None, Field(description="tasks at once (default: CPU count)")] = None,
        fail_fast: Annotated[
            bool, Field(description="start nothing new after the first failure")
        ] = False,
        executor: Annotated[
            Literal["local", "dask"] | None,
            Field(
                description="where tasks run: this machine or a Dask cluster (default: "
                "the config's executor, else local)"
            ),
        ] = None,
        dask_address: Annotated[
            str | None,
            Field(
                description="the Dask scheduler, tcp://HOST:PORT (default: $ORCH_DASK_ADDRESS, "
                "the config's executor.address, else a local cluster for the run); implies dask"
            ),
        ] = None,
        no_cache: NoCache = False,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Run the steps that changed or failed, in dependency order, and record them;
        a step whose result the result cache holds is restored (status restored), not run.
        Returns ok, run_id, counts, and per step: status, reasons, exit_code, attempts,
        message, log path and the last lines of its output (log_tail). With a
        progressToken, each event of the run (docs/events.md) is a progress notification
        whose message is the event's JSON."""

    def status(workflows: Names = None, project: Project = None) -> dict[str, Any]:
        """The recorded state of each step (succeeded, failed, never-ran, ...), with its last
        exit code, duration, outputs and log path; and the circuit breakers."""

    def history(
        workflows: Names = None,
        limit: Annotated[int, Field(description="how many runs, newest first")] = 20,
    ) -> dict[str, Any]:
        """Past runs, newest first, each with its tasks (attempts), statuses and exit codes."""

    def logs(
        workflow: Workflow,
        step: Step,
        run: Annotated[
            int | None, Field(description="run id (default: the latest run of the step)")
        ] = None,
        lines: Annotated[int, Field(description="how many lines from the end")] = 100,
    ) -> dict[str, Any]:
        """The last lines of a step's task log (its output, and orch's notes on it)."""

    def graph(
        workflow: Workflow,
        format: Annotated[str, Field(description="text, dot or mermaid")] = "text",
        reduce: Annotated[
            bool, Field(description="leave out each edge a longer path implies")
        ] = False,
    ) -> dict[str, Any]:
        """A workflow's DAG: each step with the steps it needs, and a rendering."""

    def workflow_list() -> dict[str, Any]:
        """Every workflow: name, project, manifest file, number of steps, description."""

    def explain(workflow: Workflow, step: Step, env: Env = None) -> dict[str, Any]:
        """Why this step would (or would not) run now: its plan action and reasons, every
        part of its fingerprint recorded -> now (``parts``: command, params, environment
        variables by keyed digest, input files, upstream results; secrets masked), those
        of the steps it needs, and its last recorded result."""

    Jobs = Annotated[int | None, Field(description="tasks at once (default: CPU count)")]
    FailFast = Annotated[bool, Field(description="start nothing new after the first failure")]

    def execute_workflow(
        workflow: Workflow,
        env: Env = None,
        force_all: ForceAll = False,
        params: Params = None,
        jobs: Jobs = None,
        fail_fast: FailFast = False,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Apply one workflow: run its steps that changed or failed, in dependency order,
        and record them. Answers as apply does."""

    def execute_task(
        workflow: Workflow,
        step: Step,
        env: Env = None,
        params: Params = None,
        jobs: Jobs = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Run one step now, even if it is up to date (as orch apply WORKFLOW --force
        WORKFLOW/STEP): a step it needs that is not up to date runs first, and the steps
        that depend on it run after it. Answers as apply does."""

    def create_project(
        name: Annotated[
            str, Field(description="project name: letters, digits, '_' and '-', at most 100")
        ],
        template: Annotated[str, Field(description="project template (see orch template list)")],
        params: Annotated[
            dict[str, str] | None, Field(description="template params, KEY -> VALUE")
        ] = None,
        path: Annotated[
            str | None,
            Field(description="folder to lay it out in, relative to the root (default: NAME)"),
        ] = None,
    ) -> dict[str, Any]:
        """Lay out a new project from a template: all files or none, never replacing one.
        Returns the files written (paths relative to the root) and its workflows."""

    def manage_project(
        action: Annotated[
            Literal["list", "status", "archive", "restore"],
            Field(
                description="list every project; status of one; archive one (pack it into "
                ".orch/archive/ and remove its files); restore an archived one"
            ),
        ],
        name: Annotated[
            str | None, Field(description="the project (every action but list)")
        ] = None,
        env: Annotated[
            str | None, Field(description="status only: the environment whose results to show")
        ] = None,
    ) -> dict[str, Any]:
        """Projects: list them, show one's recorded state, archive or restore one."""

    def get_system_status() -> dict[str, Any]:
        """The host (CPU, memory, load), every quota with what runners hold of it, running
        tasks, circuit breakers, recent task metrics and health checks."""

    def get_cache_status() -> dict[str, Any]:
        """The result cache (docs/cache.md): where it is, how many results it holds, their
        bytes, hits and misses, the hit rate and the configured ``max_size``."""

    return [
        (validate, READ),
        (plan, READ),
        (apply, RUN),
        (status, READ),
        (history, READ),
        (logs, READ),
        (graph, READ),
        (workflow_list, READ),
        (explain, READ),
        (execute_workflow, RUN),
        (execute_task, RUN),
        (create_project, CREATE),
        (manage_project, MANAGE),
        (get_system_status, READ),
        (get_cache_status, READ),
    ]
