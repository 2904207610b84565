vw_unit_test(test_conf vwagent)
vw_unit_test(test_result vwcommon)
vw_unit_test(test_outbox vwagent)
vw_unit_test(test_assess vwagent)
