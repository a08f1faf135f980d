"""The ``extract-entities`` flow: documents in object storage in, partitioned Parquet tables out.

    take the output's writer lease (a second run on the same output is refused)
    ->  recover the output (roll back batches a killed run left uncommitted, finish its
        retractions)
    ->  plan: list the input, skip what the manifest holds, cut the rest into batches
        (a progress artifact follows the batches as they commit)
    ->  load the model (fail fast on a bad reference)
    ->  retract the old rows of input objects that changed since they were processed
    ->  per batch: read -> normalise -> annotate -> validate (contracts; failing documents to
        quarantine, too many failures reject the batch) -> write tables -> write manifest entry
    ->  write the run record (with the contract results), publish the contract report artifact
    ->  report: draw the entity chart next to the outputs, publish the summary page and the
        top entities per label

Batches go through in rounds of one batch per device (one on CPU, N on N GPUs): the
annotate task is mapped over a round, one device each, while the next round is read and
normalised and the previous round is written, so I/O overlaps inference and at most three
rounds are held in memory. With ``task_runner="ray"`` the annotate tasks go to a Ray cluster
instead (``flows/ner_runners.py``), a round being one batch per NER task the cluster runs at
once (per GPU, or per ``ray_cpus_per_task`` CPUs); everything else stays here. Validation
runs in the flow, batch after batch in plan order, so that of two records with one ``doc_id``
the first in input order is always the one kept.

A batch rejected by its contracts (more failing documents than ``max_failure_rate``, or a
count that does not add up) is not written; the batches validated before it are committed,
the run record is written with status ``"failed"`` and the error is raised again. Any other
failure after planning (a model that does not load, a device lost, a storage error past its
retries) ends the same way: run record, reports and progress bar say "failed".
"""

from __future__ import annotations

from prefect import flow
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.credentials import storage_credentials
from flows.extract_params import ExtractParams
from flows.extraction_run import ExtractionRun, prefetched
from flows.ner_runners import annotate_round, ner_runner
from flows.progress import ProgressEvent, progress_listener
from nerflow.etl.listing import Batch
from nerflow.etl.normalising import NormalisedBatch
from nerflow.etl.report import RunSummary
from tasks.annotating import prepare_model
from tasks.listing import plan_batches
from tasks.normalising import normalise_batch
from tasks.reading import read_batch
from tasks.validating import validate_batch
from tasks.writing import hold_output, recover_output, retract_changed, write_batch

__all__ = ["ExtractParams", "ProgressEvent", "extract_entities", "progress_listener"]


# (Prefect's stubs type the runner's futures as Never until it runs.)
@flow(name="extract-entities", task_runner=ThreadPoolTaskRunner(max_workers=8))  # type: ignore[arg-type]
def extract_entities(params: ExtractParams) -> RunSummary:
    """Extract entities from every new input object and commit them batch by batch.

    Returns:
        The run's counts (documents, entities by label and language, throughput, tables).

    Raises:
        BatchRejectedError: A batch broke the contracts beyond ``max_failure_rate``.
        ReconciliationError: A batch's counts did not add up.
        ContractViolationError: A table broke its contract in a way quarantine cannot fix.
    """
    credentials = storage_credentials(params.storage_credentials_block)  # never a parameter
    source, output = params.source(credentials), params.output(credentials)
    read_config, normalise_config, annotate_config = params.reading(), params.normalising(), params.annotating()
    run = ExtractionRun.begin(params, run_id=str(flow_run.id), source=source, output=output)

    def read_and_normalise(batch: Batch) -> PrefectFuture[NormalisedBatch]:
        # Prefect hands a task the value of a future passed to it; its stubs take the value only.
        read = read_batch.submit(source, batch, read_config)
        return normalise_batch.submit(read, normalise_config)  # type: ignore[call-overload]

    with hold_output(output, run.context.run_id):
        recover_output(output)
        run.planned(plan_batches(source, output, params.batching()))
        try:
            with ner_runner(params.task_runner, params.device, params.ray_settings()) as ner:
                run.loaded(ner, prepare_model(annotate_config, ner.model_device) if run.plan.batches else None)
                if run.plan.changed:
                    retract_changed(output, run.plan.changed)
                for batches, normalised in prefetched(ner.rounds(run.plan.batches), read_and_normalise):
                    annotations = annotate_round(ner, normalised, annotate_config, run.model)
                    run.collect_writes()  # the round before: written while this one was annotated
                    # In plan order, one batch after the other: each sees the ids of those before it.
                    for batch, documents, annotation in zip(batches, normalised, annotations):
                        # quote(): the set of ids is passed as it is, not walked for futures.
                        validated = validate_batch(  # type: ignore[call-overload]
                            batch, documents.result(), annotation, run.context, run.validate_config, quote(run.claimed)
                        )
                        run.writing(write_batch.submit(output, run.validated(validated)))
                run.collect_writes()
        except Exception as e:  # noqa: BLE001 (recorded as the run's failure, then raised by finish)
            run.failed(e)
        return run.finish()
