"""What lives only while a run lasts: preparing rules, submitting or adopting jobs,
their outcomes, the journal, the run record, progress lines and the status cadence."""
