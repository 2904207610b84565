# Unit tests of the helpers in common/ that both binaries share.
vw_unit_test(test_fileio vwcommon)
vw_unit_test(test_cli vwcommon)
vw_unit_test(test_utf8 vwcommon)
vw_unit_test(test_worker vwcommon)
vw_unit_test(test_log vwcommon)
vw_unit_test(test_roff vwcommon)
