package localslack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kongbot/kongbot/localslack"
	"github.com/slack-go/slack"
)

// BenchmarkSignedDeliveryHTTP measures localslack's own cost of building,
// signing, sending and timing slash commands and clicks with 50 concurrent
// senders, against a bot that only verifies the signature and acks. It
// bounds what localslack adds to the bot's ack-latency benchmark.
//
//	go test -run '^$' -bench SignedDeliveryHTTP -benchtime 2000x ./localslack/
func BenchmarkSignedDeliveryHTTP(b *testing.B) {
	ls := localslack.New(localslack.Options{})
	if err := ls.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer ls.Close()
	verify := func(w http.ResponseWriter, r *http.Request) {
		sv, err := slack.NewSecretsVerifier(r.Header, ls.SigningSecret())
		if err == nil {
			_ = r.ParseForm()
			_, _ = sv.Write([]byte(r.PostForm.Encode()))
		}
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		}
	}
	bot := httptest.NewServer(http.HandlerFunc(verify))
	defer bot.Close()
	ls.SetEndpoints(localslack.Endpoints{Commands: bot.URL + "/commands", Interactions: bot.URL + "/interactions"})
	api := slack.New(ls.BotToken(), slack.OptionAPIURL(ls.APIURL()))
	_, ts, err := api.PostMessage(localslack.ChannelID, slack.MsgOptionText("approve?", false),
		slack.MsgOptionBlocks(approvalBlocks("r42:3:ab12")...))
	if err != nil {
		b.Fatal(err)
	}

	var mu sync.Mutex
	var lat []time.Duration
	ctx := context.Background()
	// RunParallel starts parallelism×GOMAXPROCS goroutines: 50 senders.
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			var d localslack.Delivery
			var err error
			if i%2 == 0 {
				d, err = ls.SlashCommand(ctx, localslack.OnCallID, localslack.ChannelID, "/kong status")
			} else {
				d, err = ls.Click(ctx, localslack.Lead1ID, localslack.ChannelID, ts, "step_approve", "")
			}
			i++
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			lat = append(lat, d.AckLatency)
			mu.Unlock()
		}
	})
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
