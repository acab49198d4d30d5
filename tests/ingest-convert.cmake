# Server-side ingest jobs convert documents with moactl's code (common/):
# gzip, Latin-1, UTF-16, HTML and PDF against the real daemon, the same
# reasons as moactl for what is refused, and a hanging pdftotext killed by
# a job's cancel and by moad's stop. moa_integration_test() is core.cmake's
# (included before this file: fragments are included in name order).
moa_integration_test(ingest_convert)
