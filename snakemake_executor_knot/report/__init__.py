"""``knot report``: read a run record, show each job's timeline, cost the run and suggest
right-sized requests. Kept free of imports; see records, phases, pricing, sizing, table and
render."""
