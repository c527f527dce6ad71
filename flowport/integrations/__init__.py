"""flowport run by the schedulers and task queues people already have.

- :mod:`flowport.integrations.celery`: a Celery app whose task ``flowport.run_job`` runs a job
  file on any worker; a worker lost mid-run (SIGKILL, a lost machine) has its job redelivered
  to another, which resumes it from the job's checkpoint log. Needs ``flowport[celery]``.

Each integration stands on the facade and the engine, never the other way round: nothing here
is imported by ``import flowport``.
"""

from __future__ import annotations
