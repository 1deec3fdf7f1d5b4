"""Charts of the recovery report, drawn with matplotlib (the `charts` extra), imported only
where a report is rendered: `payretry report --html/--png` and the dashboard's analytics."""
