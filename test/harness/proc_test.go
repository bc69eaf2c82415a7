package harness

import (
	"os"
	"testing"
	"time"
)

// The figures the benchmarks report of a process come out of /proc for this very process.
func TestProcFiguresOfThisProcess(t *testing.T) {
	pid := os.Getpid()
	rss, peak, err := ProcMemory(pid)
	if err != nil || rss <= 0 || peak < rss {
		t.Errorf("ProcMemory: rss %d, peak %d, %v", rss, peak, err)
	}
	st, err := ProcStatus(pid)
	if err != nil || st.RssAnon == 0 || st.RssAnon > st.VmRSS {
		t.Errorf("ProcStatus: RssAnon %d of VmRSS %d, %v", st.RssAnon, st.VmRSS, err)
	}
	// Spin until the clock ticks (it counts in hundredths of a second), for at most 2 s.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if cpu, err := ProcCPUTime(pid); err != nil {
			t.Fatal(err)
		} else if cpu > 0 {
			return
		}
	}
	t.Error("ProcCPUTime: no CPU time after 2 s of spinning")
}
