package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSpec describes a child process: a server under test, the sample
// upstream, or the floor.
type procSpec struct {
	name string
	cpu  int // CPU to pin to with taskset; <0: not pinned
	bin  string
	args []string
	env  []string // added to the cleaned environment (see childEnv)
	// announce: the process prints "LISTEN <addr>" on stdout first; start
	// waits for it and records the address.
	announce bool
	logDir   string // stdout and stderr go to <logDir>/<name>.{out,err}
}

// proc is a running child process.
type proc struct {
	name    string
	pid     int
	addr    string // announced address, when procSpec.announce
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	errPath string
}

// startProc starts spec and, for announcing processes, waits (bounded by
// ctx and 30 s) for its listen address. Children get their own process group
// and SIGKILL if the harness dies, so a killed harness leaves nothing behind.
func startProc(ctx context.Context, spec procSpec) (*proc, error) {
	argv := append([]string{spec.bin}, spec.args...)
	if spec.cpu >= 0 {
		// taskset execs the program: the child's PID is the server's PID.
		argv = append([]string{"taskset", "-c", strconv.Itoa(spec.cpu)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = childEnv(spec.env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	outF, err := os.Create(filepath.Join(spec.logDir, spec.name+".out"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	errPath := filepath.Join(spec.logDir, spec.name+".err")
	errF, err := os.Create(errPath)
	if err != nil {
		outF.Close()
		return nil, fmt.Errorf("start %s: %w", spec.name, err)
	}
	cmd.Stderr = errF
	var stdout io.ReadCloser
	if spec.announce {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			outF.Close()
			errF.Close()
			return nil, fmt.Errorf("start %s: %w", spec.name, err)
		}
	} else {
		cmd.Stdout = outF
	}
	if err := cmd.Start(); err != nil {
		outF.Close()
		errF.Close()
		return nil, fmt.Errorf("start %s (%s): %w", spec.name, strings.Join(argv, " "), err)
	}
	p := &proc{name: spec.name, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{}), errPath: errPath}
	addrc := make(chan string, 1)
	if spec.announce {
		go func() {
			sc := bufio.NewScanner(stdout)
			announced := false
			for sc.Scan() {
				line := sc.Text()
				if !announced && strings.HasPrefix(line, "LISTEN ") {
					announced = true
					addrc <- strings.TrimPrefix(line, "LISTEN ")
					continue
				}
				fmt.Fprintln(outF, line)
			}
		}()
	}
	go func() {
		p.waitErr = cmd.Wait()
		outF.Close()
		errF.Close()
		close(p.done)
	}()
	if !spec.announce {
		return p, nil
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before listening (%v): %s", spec.name, p.waitErr, tailFile(errPath, 800))
	case <-t.C:
		p.stop()
		return nil, fmt.Errorf("%s did not announce its address within 30s", spec.name)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to 10 s, then kills.
func (p *proc) stop() {
	if p == nil || !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// childEnv is the harness's environment without the Go runtime knobs that
// would make the two systems differ from their defaults (both run with
// defaults; GOMAXPROCS follows the taskset affinity), plus extra.
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG", "GOTRACEBACK":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// clockTick is the kernel's USER_HZ, the unit of utime/stime in
// /proc/<pid>/stat. It is 100 on every mainstream Linux build; getconf is
// asked once in case it is not.
var clockTick = func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}()

// cpuTime returns the user+system CPU time a process (all its threads,
// including exited ones) has used so far. Resolution is one clock tick
// (10 ms), i.e. 0.1 % of a 10 s round.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat extracts utime+stime from the text of /proc/<pid>/stat. The
// command name (field 2) may contain spaces and parentheses, so fields are
// counted after the last ')'.
func parseProcStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command field")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("proc stat: bad utime/stime")
	}
	return time.Duration((ut + st) * int64(time.Second) / clockTick), nil
}

// ioCounts are a process's read- and write-class system calls so far
// (/proc/<pid>/io syscr, syscw: read, readv, recvfrom…; write, writev,
// sendto…). Unlike CPU time they do not depend on how busy the machine is,
// which makes them a stable way to compare how much I/O work two systems do
// per request.
type ioCounts struct{ reads, writes int64 }

func ioSyscalls(pid int) (ioCounts, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return ioCounts{}, err
	}
	return parseProcIO(string(b))
}

func parseProcIO(s string) (ioCounts, error) {
	var c ioCounts
	var got int
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "syscr":
			c.reads, got = n, got+1
		case "syscw":
			c.writes, got = n, got+1
		}
	}
	if got != 2 {
		return c, errors.New("proc io: no syscr/syscw")
	}
	return c, nil
}

// tailFile returns the last n bytes of a file, for error messages.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(b, off)
	return strings.TrimSpace(string(b))
}
