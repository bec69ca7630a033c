// Package localslack provides a local Slack-compatible workspace for tests and
// the demo: the Web API methods kongbot calls (answered as slack-go parses them),
// Socket Mode (apps.connections.open, a WebSocket with hello, envelopes, timed
// acks, disconnect and refresh), signed slash commands and block_actions posted
// to a bot's HTTP endpoints, a response_url sink, seeded users and user groups,
// faults on demand (429 with Retry-After, 5xx, ok:false, slow or dropped
// connections), and a chat-client web page to read the channel and click the
// buttons as any seeded user.
//
// Tests drive a bot through it exactly as Slack would:
//
//	ls := localslack.New(localslack.Options{})
//	if err := ls.Start(ctx); err != nil { ... }
//	defer ls.Close()
//	api := slack.New(ls.BotToken(), slack.OptionAPIURL(ls.APIURL()), slack.OptionAppLevelToken(ls.AppToken()))
//	... start the bot with api ...
//	d, err := ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong upgrade start prod 1.0.3")
//	err = ls.WaitFor(ctx, func() bool { return len(ls.Channel(localslack.ChannelName)) > 0 })
//
// Message timestamps are unique and strictly increasing across the workspace,
// so a ts alone names a message. All reads return copies.
package localslack
