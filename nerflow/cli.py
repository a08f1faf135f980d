"""The ``nerflow`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

__all__ = ["main", "build_parser"]

# Distributions whose versions decide what a model run produces, in the order printed.
_VERSIONED = ("torch", "transformers", "span_marker")


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_version(_args: argparse.Namespace) -> int:
    from nerflow import __version__

    print(f"nerflow {__version__}")
    for name in _VERSIONED:
        print(f"{name} {_installed_version(name)}")
    print(f"python {platform.python_version()}")
    return 0


def _cmd_convert_checkpoint(args: argparse.Namespace) -> int:
    from ner_core.errors import NerflowError
    from ner_core.loading import convert_to_safetensors
    from nerflow.errors import describe_error

    try:
        written = convert_to_safetensors(args.checkpoint)
    except NerflowError as e:
        print(f"nerflow convert-checkpoint: {describe_error(e)}", file=sys.stderr)
        return 1
    print(f"wrote {written}; the checkpoint now loads without allow_pickle")
    return 0


def _check_data_uris(uris: Sequence[str], storage_options: dict) -> None:
    """Fail before the flow starts (Prefect's server, the model) when a data file is missing."""
    from ner_core.labelled import expand_uri
    from nerflow.storage import check_protocol

    for uri in uris:
        check_protocol(uri)
        expand_uri(uri, storage_options=storage_options)


def _cmd_train(args: argparse.Namespace) -> int:
    from flows.train import load_config, train_model

    config = load_config(args.config)
    if args.output_dir:
        config = config.model_copy(update={"output_dir": args.output_dir})
    if args.max_steps:
        config = config.model_copy(update={"max_steps": args.max_steps})
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})
    _check_data_uris([source.uri for source in [*config.train, *config.dev]], config.storage_options)
    result = train_model(config)
    print(f"model: {result['model_dir']}")
    if result.get("adapter_dir"):
        print(f"adapter: {result['adapter_dir']}")
    return 0


def _label_mapping(items: list[str] | None) -> dict[str, str | None]:
    """``["MISC=", "A=B"]`` as ``{"MISC": None, "A": "B"}``: an empty target drops the label."""
    out = {}
    for item in items or []:
        source, _, target = item.partition("=")
        out[source] = target or None
    return out


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluate import EvaluateParams, evaluate_model

    params = EvaluateParams(
        model=args.model,
        data=args.data,
        label_map=_label_mapping(args.label_map),
        gold_label_map=_label_mapping(args.gold_label_map),
        ignore_labels=args.ignore_label or [],
        max_records=args.max_records,
        as_written=args.as_written,
        precision=args.precision,
        space_punctuation=not args.no_space_punctuation,
        trim_unpaired_quotes=not args.no_trim_quotes,
        output=args.output,
        **({"span_filter": args.span_filter} if args.span_filter is not None else {}),
    )
    _check_data_uris(params.data, params.storage_options)
    evaluate_model(params)
    return 0


def _storage_options(args: argparse.Namespace) -> dict:
    """fsspec storage options from ``--storage-options`` JSON, with ``--endpoint-url`` folded in."""
    import json

    options = json.loads(args.storage_options) if args.storage_options else {}
    if args.endpoint_url:
        options.setdefault("client_kwargs", {})["endpoint_url"] = args.endpoint_url
    return options


def _add_storage_arguments(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--endpoint-url`` and ``--storage-options``, read back by :func:`_storage_options`."""
    parser.add_argument("--endpoint-url", help=f"S3-compatible endpoint (MinIO, moto, …) {what}".rstrip())
    parser.add_argument("--storage-options", metavar="JSON", help="fsspec storage options as JSON")


# --- the flow's parameters as options ---------------------------------------------------------
# ExtractParams is the one definition of each parameter: its fields' names, types, defaults,
# choices and descriptions become the options of run, backfill and serve. Only spellings live here.

# Options not named --field-name: the names users typed before the options were generated.
_OPTION_NAMES = {"input_uri": "input", "output_uri": "output", "input_format": "format", "run_label": "label"}
# Second spellings kept for the same reason (a bool's --no- form comes with each).
_OPTION_ALIASES = {"trim_unpaired_quotes": ("--trim-quotes",)}
# Option names of a nested field's fields: fields.id is --id-field.
_NESTED_OPTION_NAMES = {"fields": "{}-field"}
_METAVARS = {
    "languages": "CODE",
    "modified_after": "TIME",
    "modified_before": "TIME",
    "ray_address": "ADDR",
    "ray_cpus_per_task": "N",
    "span_filter": "SETTING",
}
# Fields with options of their own: --storage-options folds in --endpoint-url (_storage_options).
_OWN_OPTIONS = frozenset({"storage_options"})


@dataclasses.dataclass(frozen=True)
class _ParamOption:
    """The command-line option of one parameter: a field, or a field of a nested field.

    Attributes:
        path: Where the value goes in the model's arguments: ``("batch_docs",)``, ``("fields", "id")``.
        flags: ``("--batch-docs",)``; empty for a positional argument.
        settings: The rest of ``add_argument``'s arguments.
    """

    path: tuple[str, ...]
    flags: tuple[str, ...]
    settings: Mapping[str, Any]

    @property
    def dest(self) -> str:
        return ".".join(self.path)


def _param_options(
    model: type[BaseModel], *, positional: bool, environment: Mapping[str, str] | None = None
) -> list[_ParamOption]:
    """One option per field of ``model`` (``ExtractParams``, or a subclass with more fields).

    Args:
        positional: Required fields become positional arguments (``nerflow run INPUT OUTPUT``);
            else options like the rest (``nerflow serve --input``: the environment may give them).
        environment: Field name -> the variable whose value is the default (``nerflow serve``).
    """
    options = []
    for name, info in model.model_fields.items():
        kind = _without_none(info.annotation)
        if name in _OWN_OPTIONS:
            continue
        if dataclasses.is_dataclass(kind):
            # A field's annotation: the dataclass itself, never an instance of it.
            options.extend(_nested_options(name, cast(type, kind)))
        else:
            variable = (environment or {}).get(name)
            options.append(_field_option(name, info, kind, positional=positional, variable=variable))
    return options


def _field_option(name: str, info: FieldInfo, kind: Any, *, positional: bool, variable: str | None) -> _ParamOption:
    """The option of field ``name`` (of type ``kind``), positional where it is required and ``positional``."""
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    help_text = _help(info.description, default, variable)
    option_name = _OPTION_NAMES.get(name, name).replace("_", "-")
    if positional and info.is_required():
        return _ParamOption((name,), (), {"metavar": option_name.upper(), "help": help_text})
    settings = {**_value_settings(kind), "help": help_text}
    if name in _METAVARS:
        settings["metavar"] = _METAVARS[name]
    elif "choices" not in settings and "action" not in settings:
        settings.setdefault("metavar", option_name.upper().replace("-", "_"))  # --label LABEL
    return _ParamOption((name,), (f"--{option_name}", *_OPTION_ALIASES.get(name, ())), settings)


def _nested_options(name: str, kind: type) -> list[_ParamOption]:
    """Options of the fields of a dataclass-valued field (``fields``: ``--id-field`` …)."""
    annotations = typing.get_type_hints(kind)
    pattern = _NESTED_OPTION_NAMES.get(name, f"{name}-{{}}")
    options = []
    for sub in dataclasses.fields(kind):
        option_name = pattern.format(sub.name).replace("_", "-")
        default = None if sub.default is dataclasses.MISSING else sub.default
        settings = {
            **_value_settings(annotations[sub.name]),
            "metavar": option_name.upper().replace("-", "_"),  # the dest's dot would show
            "help": _help(sub.metadata.get("description"), default, None),
        }
        options.append(_ParamOption((name, sub.name), (f"--{option_name}",), settings))
    return options


def _without_none(annotation: Any) -> Any:
    """``int`` for ``int | None``: an optional field's option is unset, not None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _value_settings(kind: Any) -> dict[str, Any]:
    """``add_argument``'s arguments that read a value of type ``kind``.

    No default: an option left unset stays None, and the model's default applies.
    """
    if typing.get_origin(kind) is Annotated:  # a constrained type (StorageOptions): its base reads the value
        kind = typing.get_args(kind)[0]
    origin = typing.get_origin(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        choices = typing.get_args(kind)
        return {"choices": choices, "type": type(choices[0])}
    if origin is tuple:
        return {**_value_settings(typing.get_args(kind)[0]), "nargs": "+"}
    if kind is dict or origin is dict:
        return {"type": _json_object, "metavar": "JSON"}
    if kind is datetime:
        return {"type": datetime.fromisoformat}
    return {"type": kind}


def _json_object(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"invalid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value


def _help(description: str | None, default: Any, variable: str | None) -> str:
    """The field's description and its default: the model's, or an environment variable's."""
    shown = _shown_default(default)
    if variable:
        shown = f"{variable}, else {shown}" if shown else variable
    text = description or ""
    if shown:
        text = f"{text} (default: {shown})"
    return text.replace("%", "%%")  # argparse formats help strings with %


def _shown_default(default: Any) -> str | None:
    if default is None or default == {}:
        return None
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple | list):
        return " ".join(map(str, default))
    return str(default)


def _add_param_options(parser: argparse.ArgumentParser, options: Sequence[_ParamOption]) -> None:
    for option in options:
        if option.flags:
            parser.add_argument(*option.flags, dest=option.dest, **option.settings)
        else:
            parser.add_argument(option.dest, **option.settings)


def _param_values(args: argparse.Namespace, options: Sequence[_ParamOption]) -> dict[str, Any]:
    """The parameters given on the command line, nested as the model takes them.

    An option left unset is left out: the model's default applies, defined there only.
    """
    values: dict[str, Any] = {}
    for option in options:
        value = getattr(args, option.dest, None)
        if value is None:
            continue
        *parents, last = option.path
        target = values
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return values


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The OUTPUT of an earlier ``nerflow run`` and how to reach it."""
    parser.add_argument("output", metavar="OUTPUT", help="tables: s3://bucket/prefix or a local directory")
    _add_storage_arguments(parser)


def _cmd_run(args: argparse.Namespace) -> int:
    from flows.extract_entities import ExtractParams
    from nerflow.run_command import run_extract

    params = _param_values(args, _param_options(ExtractParams, positional=True))
    if args.storage_options or args.endpoint_url:
        params["storage_options"] = _storage_options(args)
    return run_extract(
        params, progress=not args.no_progress, flow=getattr(args, "flow", "extract-entities"), verbose=args.verbose
    )


def _cmd_validate(args: argparse.Namespace) -> int:
    from ner_core.errors import NerflowError
    from nerflow import storage
    from nerflow.errors import describe_error
    from nerflow.etl.verifying import render_report, verify_output

    try:
        fs, root = storage.filesystem(args.output, _storage_options(args))
        report = verify_output(fs, root)
    except NerflowError as e:
        print(f"nerflow validate: {describe_error(e)}", file=sys.stderr)
        return 1
    print(render_report(report))
    return 0 if report.success else 1


def _cmd_warehouse(args: argparse.Namespace) -> int:
    import duckdb

    from ner_core.errors import NerflowError
    from nerflow import storage
    from nerflow.errors import describe_error
    from nerflow.warehouse import build_warehouse, require_output

    try:
        fs, root = storage.filesystem(args.output, _storage_options(args))
        require_output(fs, root)  # before the connection creates the warehouse file
        with duckdb.connect(args.duckdb) as con:
            report = build_warehouse(con, fs, root)
    except (NerflowError, duckdb.Error) as e:
        print(f"nerflow warehouse: {describe_error(e)}", file=sys.stderr)
        return 1
    print(f"warehouse {args.duckdb} <- {report.output}")
    for load in report.tables.values():
        print(f"  {load.table:<18} {load.rows:>10} rows from {len(load.files)} files ({load.source})")
    for note in report.notes:
        print(f"  note: {note}")
    return 0


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _cmd_serve(args: argparse.Namespace) -> int:
    import json

    from flows import deploy
    from flows.extract_entities import ExtractParams

    overrides: dict = {}
    for item in args.param or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            print(f"nerflow serve: --param takes KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        field = ExtractParams.model_fields.get(key)
        if field is not None and field.annotation in (str, str | None):
            overrides[key] = raw  # a text field: "2026" or "true" is text, not JSON
            continue
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    # An option names its field: it wins over a --param of the same field (or of the same key
    # of a nested field: --param 'fields={"id": "uid"}' --text-field body sets both).
    for key, value in _param_values(args, _param_options(ExtractParams, positional=False)).items():
        given = overrides.get(key)
        overrides[key] = {**given, **value} if isinstance(given, dict) and isinstance(value, dict) else value
    if args.storage_options or args.endpoint_url:
        given = overrides.get("storage_options")
        given = given if isinstance(given, dict) else {}
        options = _storage_options(args)
        client_kwargs = {**given.get("client_kwargs", {}), **options.get("client_kwargs", {})}
        overrides["storage_options"] = {
            **given,
            **options,
            **({"client_kwargs": client_kwargs} if client_kwargs else {}),
        }
    try:
        settings = deploy.DeploymentSettings()
        parameters = deploy.deployment_parameters(overrides, settings)
        deployment = deploy.build_deployment(
            parameters,
            name=args.name,
            cron=None if args.no_schedule else (args.cron or settings.cron),
            timezone=args.timezone or settings.timezone,
        )
    except ValueError as e:  # pydantic's ValidationError included
        print(
            f"nerflow serve: invalid deployment:\n{e}\n(input and output: --input/--output or "
            "NERFLOW_INPUT_URI/NERFLOW_OUTPUT_URI)",
            file=sys.stderr,
        )
        return 2
    deploy.serve(deployment, limit=args.limit or None)
    return 0


def _add_reading_arguments(parser: argparse.ArgumentParser) -> None:
    """How the engine reads text: ``--no-space-punctuation`` and ``--no-trim-quotes``."""
    parser.add_argument(
        "--no-space-punctuation",
        action="store_true",
        help="read text as it is; by default punctuation is set apart from words ('«Газпром»,' is read as "
        "'« Газпром » ,', the form models are trained on; entities keep the original characters)",
    )
    parser.add_argument(
        "--no-trim-quotes",
        action="store_true",
        help="keep a quotation mark on an entity's edge that pairs with none inside (by default 'Газпром»' becomes "
        "'Газпром'); with --no-space-punctuation: entities exactly as SpanMarker returns them",
    )


def _add_span_filter_argument(parser: argparse.ArgumentParser) -> None:
    # No default here: an unset option keeps EngineConfig's ('auto'), and the setting is
    # checked where the flow's parameters are (ner_core.span_filter.parse_span_filter).
    parser.add_argument(
        "--span-filter",
        metavar="SETTING",
        help="which candidate spans get marker pairs: 'auto' (default: the model's span filter at its stored "
        "operating point when it has one, about 5x faster with the default model and as accurate; every span "
        "otherwise), 'off' (every span: exact mode's work, identical to SpanMarker), 'stored', 'threshold=P' or "
        "'budget=K' (spans per word)",
    )


def _cmd_train_filter(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flows.train_filter import TrainFilterParams, train_filter
    from ner_core.filter_training import FilterTrainConfig

    output = Path(args.output)
    if not args.filter_only and output.exists() and any(output.iterdir()):
        print(
            f"nerflow train-filter: {output} exists and is not empty; name a new directory, or pass --filter-only "
            "to write the filter's two files into it",
            file=sys.stderr,
        )
        return 2
    if bool(args.data) == args.keep_head:
        print(
            "nerflow train-filter: give --data to train a filter, or --keep-head to choose the operating point of "
            "the model's own filter again (not both)",
            file=sys.stderr,
        )
        return 2
    storage_options = _storage_options(args)
    _check_data_uris([*(args.data or []), *args.dev], storage_options)
    settings = {
        name: getattr(args, name) for name in FilterTrainConfig.model_fields if getattr(args, name, None) is not None
    }
    result = train_filter(
        TrainFilterParams(
            model=args.model,
            data=args.data or [],
            dev=args.dev,
            output=args.output,
            filter_only=args.filter_only,
            keep_head=args.keep_head,
            max_records=args.max_records,
            max_dev_records=args.max_dev_records,
            label_map=_label_mapping(args.label_map),
            filter=FilterTrainConfig(**settings),
            storage_options=storage_options,
        )
    )
    print(f"span filter written to {result['output']}")
    return 0


def _add_train_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="model reference (default: the shipped default model)")
    parser.add_argument("--data", nargs="+", help="labelled JSONL files or globs to train on")
    parser.add_argument(
        "--keep-head",
        action="store_true",
        help="keep the model's filter head and only choose its operating point again on --dev (no --data)",
    )
    parser.add_argument(
        "--dev", nargs="+", required=True, help="labelled dev files: the operating point is chosen on them"
    )
    parser.add_argument("--output", required=True, help="new directory for the checkpoint with its filter")
    parser.add_argument(
        "--filter-only", action="store_true", help="write only span_filter.safetensors and .json into OUTPUT"
    )
    parser.add_argument("--max-records", type=int, help="first N records of each training file")
    parser.add_argument("--max-dev-records", type=int, help="first N records of each dev file")
    parser.add_argument("--label-map", nargs="*", metavar="DATA=MODEL", help="rename data labels; 'X=' drops X")
    # The head's settings; unset ones keep FilterTrainConfig's defaults (not imported here:
    # that would load torch for every 'nerflow --help').
    parser.add_argument("--design", choices=["mlp", "biaffine"], help="the head's design (default biaffine)")
    parser.add_argument("--epochs", type=int, help="passes over the training windows (default 3)")
    parser.add_argument(
        "--positive-weight", type=float, help="loss weight of entity spans against the rest (default 4)"
    )
    parser.add_argument(
        "--positives",
        choices=["gold", "gold+model"],
        help="spans the head learns to keep: gold entities (default), or also the model's own on the training data",
    )
    parser.add_argument(
        "--target-recall",
        type=float,
        help="share of the model's own dev entities each dev set keeps at the operating point (default 1)",
    )
    parser.add_argument(
        "--exact-threshold",
        dest="round_to_grid",
        action="store_const",
        const=False,
        help="keep the operating point's threshold as found, not rounded down to the recall curve's grid",
    )
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    _add_storage_arguments(parser)


def _add_extract_arguments(parser: argparse.ArgumentParser, arg_strings: Sequence[str]) -> None:
    """The extract-entities flow's parameters (``nerflow run`` and ``nerflow backfill``)."""
    import os

    if not _verbose(arg_strings):
        # Before Prefect is imported (the flow's module imports it): its console lines would
        # tear through the progress bar, and a failed run's traceback would bury the one line
        # that says why (nerflow.run_command). The level of the loggers stays, so the run's
        # INFO logs still reach the server (its Logs tab), only the console is quiet.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.extract_entities import ExtractParams

    _add_param_options(parser, _param_options(ExtractParams, positional=True))
    _add_storage_arguments(parser, "for input and output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="keep Prefect's log lines on the console")


def _verbose(arg_strings: Sequence[str]) -> bool:
    """Whether ``--verbose`` is among the arguments, read before the parser that owns it is built."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--verbose", action="store_true")
    return peek.parse_known_args(list(arg_strings))[0].verbose


def _add_serve_parameter_arguments(parser: argparse.ArgumentParser, _arg_strings: Sequence[str]) -> None:
    """The deployment's default parameters: every ExtractParams field as an option."""
    from flows.deploy import DeploymentSettings
    from flows.extract_entities import ExtractParams

    prefix = DeploymentSettings.model_config["env_prefix"]
    environment = {name: f"${prefix}{name.upper()}" for name in DeploymentSettings.model_fields}
    _add_param_options(parser, _param_options(ExtractParams, positional=False, environment=environment))


_AddArguments = Callable[[argparse.ArgumentParser, Sequence[str]], None]


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser that can add arguments only once the subcommand is used.

    The flow's options come from ExtractParams, whose module imports Prefect and torch
    (seconds): ``nerflow version`` and ``nerflow --help`` must not wait for that.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[_AddArguments] = []

    def defer(self, add_arguments: _AddArguments) -> None:
        """Call ``add_arguments(parser, arg_strings)`` before the first parse or help text."""
        self._deferred.append(add_arguments)

    def complete(self, arg_strings: Sequence[str] = ()) -> _CommandParser:
        """Add the deferred arguments (once); ``arg_strings`` are the ones about to be parsed."""
        while self._deferred:
            self._deferred.pop(0)(self, arg_strings)
        return self

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.complete(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()

    def format_help(self) -> str:
        self.complete()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="nerflow",
        description="Document ETL for multilingual named-entity recognition.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)
    version = commands.add_parser(
        "version", help="print the versions of nerflow and of the libraries that decide its results"
    )
    version.set_defaults(handler=_cmd_version)

    convert = commands.add_parser(
        "convert-checkpoint",
        help="write model.safetensors beside a checkpoint's pickle weights, reading them without running code",
        description="A checkpoint with only pytorch_model.bin is refused (unpickling can run arbitrary code). This "
        "reads its tensors with PyTorch's restricted unpickler (weights_only), which runs none of the file's code, "
        "and writes model.safetensors beside it.",
    )
    convert.add_argument("checkpoint", metavar="DIR", help="the checkpoint folder (holds pytorch_model.bin)")
    convert.set_defaults(handler=_cmd_convert_checkpoint)

    train = commands.add_parser(
        "train", help="fine-tune a SpanMarker model (the train-model flow); resumes an interrupted run"
    )
    train.add_argument("--config", required=True, help="training config (TOML, JSON or YAML; see configs/)")
    train.add_argument("--output-dir", help="override the config's output_dir")
    train.add_argument("--max-steps", type=int, help="override the config's max_steps")
    train.add_argument("--seed", type=int, help="override the config's seed (members of a soup differ only in it)")
    train.set_defaults(handler=_cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="strict entity-level P/R/F1 of a model on labelled data (the evaluate-model flow)"
    )
    evaluate.add_argument("--model", default="default", help="model reference (default: the shipped default model)")
    evaluate.add_argument(
        "--data", nargs="+", required=True, help="labelled JSONL files or globs (local or fsspec URIs)"
    )
    evaluate.add_argument(
        "--label-map", nargs="*", metavar="MODEL=DATA", help="rename model labels; 'MISC=' ignores MISC"
    )
    evaluate.add_argument("--gold-label-map", nargs="*", metavar="DATA=NEW", help="rename data labels; 'X=' ignores X")
    evaluate.add_argument(
        "--ignore-label", action="append", metavar="LABEL", help="leave LABEL out of gold and predictions"
    )
    evaluate.add_argument("--max-records", type=int, help="first N records of each file")
    evaluate.add_argument(
        "--as-written",
        action="store_true",
        help="rejoin sentence data as running text is written: no space before ',' or after '('",
    )
    evaluate.add_argument("--precision", choices=["exact", "fast"], default="exact")
    _add_span_filter_argument(evaluate)
    _add_reading_arguments(evaluate)
    evaluate.add_argument("--output", help="write OUTPUT.json and OUTPUT.md")
    evaluate.set_defaults(handler=_cmd_evaluate)

    train_filter = commands.add_parser(
        "train-filter",
        help="add a span filter to a SpanMarker checkpoint (encoder frozen; the train-span-filter flow)",
        description="Train a span filter for MODEL on labelled data and write the checkpoint with it: the filter "
        "scores every candidate span from the text alone, and only spans at its operating point (chosen on DEV "
        "to keep the model's own entities) get SpanMarker's marker pairs.",
    )
    _add_train_filter_arguments(train_filter)
    train_filter.set_defaults(handler=_cmd_train_filter)

    run = commands.add_parser(
        "run",
        help="extract entities from documents into Parquet tables (the extract-entities flow; incremental)",
        description="Run the extract-entities flow: INPUT (s3://bucket/prefix, a directory or a file of JSONL, "
        "Parquet or text) to tables under OUTPUT. Objects already in OUTPUT's manifest are skipped. Uses "
        "Prefect's ephemeral mode unless PREFECT_API_URL is set.",
    )
    run.defer(_add_extract_arguments)
    run.set_defaults(handler=_cmd_run)

    backfill = commands.add_parser(
        "backfill",
        help="reprocess INPUT (a prefix, optionally a time range) with another model into OUTPUT/backfill/model_id=<id>/",
        description="Run the backfill flow: the objects under INPUT (optionally only those last written in "
        "[--modified-after, --modified-before)) through --model, into the tables under "
        "OUTPUT/backfill/model_id=<model id>/. The tables directly under OUTPUT are not touched; a backfill is "
        "incremental and resumable like a run.",
    )
    backfill.defer(_add_extract_arguments)
    backfill.set_defaults(handler=_cmd_run, flow="backfill")

    validate = commands.add_parser(
        "validate",
        help="check the tables under OUTPUT against their data contracts (exit status 0: all pass, 1: not)",
        description="Check an output of `nerflow run` against the data contracts (docs/tables.md): every file's "
        "schema and version stamp, every row rule (offsets, labels, scores, uniqueness, vectors) and the "
        "reconciliation of the tables with the manifest. Prints a report; exit status 0 when everything passes.",
    )
    _add_output_arguments(validate)
    validate.set_defaults(handler=_cmd_validate)

    warehouse = commands.add_parser(
        "warehouse",
        help="create or refresh a DuckDB warehouse from the tables under OUTPUT (committed rows only)",
        description="Copy the committed rows of an output of `nerflow run` into DuckDB tables (documents, entities, "
        "entity_embeddings, quarantine, objects, runs) with the contracts' column types, replacing what an earlier "
        "refresh loaded, in one transaction. Queries: docs/warehouse.md.",
    )
    warehouse.add_argument(
        "--duckdb", required=True, metavar="FILE", help="the DuckDB database file (created if missing)"
    )
    _add_output_arguments(warehouse)
    warehouse.set_defaults(handler=_cmd_warehouse)

    serve = commands.add_parser(
        "serve",
        help="serve the extract-entities flow: a deployment on a cron schedule, runnable from the Prefect UI",
        description="Register the deployment extract-entities/NAME with the Prefect API (PREFECT_API_URL) and run "
        "its flow runs, scheduled or started from the UI or API, until interrupted. Default parameters come "
        "from NERFLOW_INPUT_URI, NERFLOW_OUTPUT_URI and NERFLOW_MODEL, read now; the options below override them. "
        "The UI's Run button can change any parameter of a single run.",
    )
    serve.add_argument("--name", default="scheduled", help="deployment name (default: scheduled)")
    serve.add_argument("--cron", help="cron schedule (default: $NERFLOW_CRON or '0 2 * * *', daily at 02:00)")
    serve.add_argument("--timezone", help="time zone of the cron schedule (default: $NERFLOW_TIMEZONE or UTC)")
    serve.add_argument("--no-schedule", action="store_true", help="no schedule: runs start from the UI or API only")
    serve.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="another default parameter of the flow (VALUE is JSON, or else a string), e.g. device=cpu, "
        'batch_docs=500, languages=\'["en","de"]\'; repeatable',
    )
    _add_storage_arguments(serve, "for input and output")
    serve.add_argument("--limit", type=_non_negative, default=1, help="most flow runs at once (default 1; 0: no limit)")
    serve.defer(_add_serve_parameter_arguments)
    serve.set_defaults(handler=_cmd_serve)
    return parser


EPHEMERAL_STARTUP_SECONDS = 120
"""How long ``nerflow`` waits for Prefect's temporary server to start (Prefect's own default: 20)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    import os

    # Prefect's temporary server sends telemetry by default; on the offline machines nerflow
    # is built for, that logs an ERROR line into every run. Setting the variable turns it back on.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect gives its temporary server 20 s to answer; a busy 2-core machine took longer
    # ("Timed out while attempting to connect to ephemeral Prefect API server") and the run
    # failed before it began. Setting the variable chooses another wait.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_SECONDS))
    args = build_parser().parse_args(argv)
    # What a user got wrong (a missing file, a misspelt config key, a bad URI) is one line,
    # not a traceback; bugs still raise.
    try:
        return args.handler(args)
    except Exception as e:
        explained = _user_error(e)
        if explained is None:
            raise
        code, message = explained
        print(f"nerflow {args.command}: {message}", file=sys.stderr)
        return code


def _user_error(error: Exception) -> tuple[int, str] | None:
    """``(exit status, message)`` for an error of the user's input, else None.

    Imports only once an error is raised: ``nerflow version`` and ``--help`` stay free of torch.
    """
    import json
    import tomllib

    from pydantic import ValidationError

    from ner_core.errors import NerflowError
    from nerflow.errors import describe_error

    if isinstance(error, tomllib.TOMLDecodeError):
        return 2, f"invalid TOML: {error}"
    if isinstance(error, json.JSONDecodeError):
        return 2, f"invalid JSON: {error}"
    if isinstance(error, ValidationError):
        return 2, f"invalid configuration: {error}"
    if isinstance(error, (NerflowError, OSError)):
        return 1, describe_error(error)
    return None


if __name__ == "__main__":
    sys.exit(main())
