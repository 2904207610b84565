vw_unit_test(test_conf vwagent)
vw_unit_test(test_result vwcommon)
vw_unit_test(test_outbox vwagent)
vw_unit_test(test_uplink vwagent)
vw_unit_test(test_failover vwagent) # issue 13: collector URL lists and failover
vw_unit_test(test_probe_stream vwagent)
vw_unit_test(test_scheduler vwagent) # issue 15: workers sized from the cadence
vw_unit_test(test_assess vwagent)
vw_unit_test(test_agent_sessions vwagent)
vw_unit_test(test_thumb vwagent) # issue 16 C
vw_unit_test(test_metrics vwagent) # issue 14: the agent's textfile metrics
vw_unit_test(test_probe_playback vwagent) # issue 15.2: playback URLs and their config errors
