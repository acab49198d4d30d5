# Compatibility with an unmodified official OpenAI client: the OpenAI Node
# SDK (tests/compat/package.json pins it, installed by `npm ci` there; .ci/run
# does it) against the real daemon on a TCP listener. Without Node.js or the
# SDK the suite is reported as skipped, with the reason in its output, and
# fails under CI (CI=true). moa_integration_test() comes from core.cmake,
# which is included after this file: defer the registration to the
# directory's end.
cmake_language(DEFER CALL moa_integration_test compat)
cmake_language(DEFER CALL set_tests_properties integration-compat PROPERTIES
  TIMEOUT 600)
