"""The Ray side of a trial, all in one place: ``single`` runs one trainer as a Tune trial, ``cohort_host``
runs a cohort of slot-trials as one, and ``cohort_plan`` holds what the driver, the progress line and
tracking need to know about cohort hosts without importing torch or Ray."""
