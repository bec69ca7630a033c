package kongsim

import "context"

// startupCheck is filled in with the migrations state checks.
func (n *Node) startupCheck(ctx context.Context) error { return nil }
