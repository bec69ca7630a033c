// Package demo runs kongbot's demo on this machine, with no account anywhere:
// a throwaway Postgres, the fake Okta, a 0.13.1 kongsim cluster holding the
// demo state (API `test` guarded by okta-auth), an upstream echo service,
// HAProxy in front, localslack with its users, a steady traffic generator,
// and the bot in Socket Mode against localslack, configured by a generated
// file. A provisioner plays the people of the runbook's manual steps: it
// starts the new generation's nodes when a run waits for them and stops the
// old ones when a run waits for their decommissioning.
//
// StartEnv brings up everything but the bot (tests start the bot as a
// separate process to kill it); Run is `kongbot demo`.
package demo
