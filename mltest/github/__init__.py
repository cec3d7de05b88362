"""The GitHub side: read the Actions context, publish a report (PR comment, job summary,
outputs, annotations). Nothing here imports torch: the report is the contract."""
