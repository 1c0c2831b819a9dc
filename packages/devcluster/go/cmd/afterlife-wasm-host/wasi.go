package main

// The guest's wasi_snapshot_preview1: wazero's implementation for everything except sockets and
// poll_oneoff, which this file owns.
//
// Why not wazero's own: its poll_oneoff reports every non-blocking descriptor ready at once, so
// an idle Go wasip1 server (whose netpoller parks in poll_oneoff on its non-blocking listener)
// spins a whole core; and its socket files (experimental/sock) keep their host descriptors in
// internal packages, so no poll_oneoff override could wait on them. Here the listener and each
// accepted connection are plain host descriptors and poll_oneoff is ppoll(2) on them.
//
// Guest descriptors are virtual: a table maps each to a wazero descriptor or to one of our
// sockets. That also lets the listener be fd 3 ahead of the "/" preopen (fd 4); wazero puts
// listeners after preopens.

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"golang.org/x/sys/unix"
)

var le = binary.LittleEndian

// WASI preview1 errno values (not the host's).
const (
	errnoSuccess = 0
	errnoAgain   = 6
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoIO      = 29
	errnoNotdir  = 54
	errnoNotsock = 57
	errnoNotsup  = 58
	errnoSpipe   = 67
)

var hostErrnos = map[unix.Errno]uint16{
	unix.EAGAIN: errnoAgain, unix.EBADF: errnoBadf, unix.ECONNABORTED: 13, unix.ECONNREFUSED: 14,
	unix.ECONNRESET: 15, unix.EHOSTUNREACH: 23, unix.EINTR: 27, unix.EINVAL: errnoInval, unix.EIO: errnoIO,
	unix.EMFILE: 33, unix.ENETDOWN: 38, unix.ENETUNREACH: 40, unix.ENFILE: 41, unix.ENOBUFS: 42,
	unix.ENOMEM: 48, unix.ENOTCONN: 53, unix.ENOTSOCK: errnoNotsock, unix.EOPNOTSUPP: errnoNotsup,
	unix.EPIPE: 64, unix.ETIMEDOUT: 73,
}

func wasiErrno(err error) uint16 {
	var e unix.Errno
	if errors.As(err, &e) {
		if n, ok := hostErrnos[e]; ok {
			return n
		}
	}
	return errnoIO
}

const (
	fdflagNonblock = 4
	filetypeSocket = 6 // SOCKET_STREAM
	eventClock     = 0
	eventFdRead    = 1
	eventFdWrite   = 2
	socketRights   = 1<<1 | 1<<3 | 1<<6 | 1<<21 | 1<<27 | 1<<28 | 1<<29 // read, set flags, write, filestat, poll, shutdown, accept
)

type fdEntry struct {
	wazero int32   // descriptor in wazero's table, when sock is nil
	stdio  int     // host stdio descriptor behind wazero's 0-2, else -1 (files are always ready)
	sock   *socket // a socket this host owns
}

type socket struct {
	fd       int // host descriptor, always O_NONBLOCK on the host: guest blocking is emulated
	listener bool
	nonblock bool // the guest's FDFLAG_NONBLOCK
}

type wasiHost struct {
	fds   []*fdEntry // guest descriptor -> entry; nil is free
	stock map[string]api.GoModuleFunction
	start time.Time // epoch of the guest's monotonic clock
}

type wasiFunc func(ctx context.Context, mod api.Module, stack []uint64) uint16

// newWASIHost lays out the guest's descriptors: stdio, the listener as fd 3, then wazero's
// preopens ("/" is wazero's 3, the guest's 4).
func newWASIHost(listenFD int, preopens int) *wasiHost {
	h := &wasiHost{start: time.Now()}
	for i := range 3 {
		h.fds = append(h.fds, &fdEntry{wazero: int32(i), stdio: i})
	}
	h.fds = append(h.fds, &fdEntry{sock: &socket{fd: listenFD, listener: true}, stdio: -1})
	for i := range preopens {
		h.fds = append(h.fds, &fdEntry{wazero: int32(3 + i), stdio: -1})
	}
	return h
}

func (h *wasiHost) nanotime() int64 { return int64(time.Since(h.start)) }

// instantiate registers wasi_snapshot_preview1: wazero's functions, with every one that takes
// a descriptor wrapped to translate it (or to serve our sockets), and poll_oneoff replaced.
func (h *wasiHost) instantiate(ctx context.Context, r wazero.Runtime) error {
	// A compiled copy of the stock module gives us its Go implementations to delegate to.
	stock, err := wasi_snapshot_preview1.NewBuilder(r).Compile(ctx)
	if err != nil {
		return err
	}
	defer stock.Close(ctx)
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	h.stock = map[string]api.GoModuleFunction{}
	for name, def := range stock.ExportedFunctions() {
		if fn, ok := def.GoFunction().(api.GoModuleFunction); ok {
			h.stock[name] = fn
		}
	}
	for name, def := range stock.ExportedFunctions() {
		var fn wasiFunc
		switch {
		case name == "poll_oneoff":
			fn = h.pollOneoff
		case name == "fd_renumber":
			fn = h.fdRenumber
		case strings.HasPrefix(name, "sock_"):
			fn = h.sockCall(name)
		case h.stock[name] != nil && fdParams(name) != nil:
			fn = h.fdCall(name, fdParams(name))
		default:
			continue
		}
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			stack[0] = uint64(fn(ctx, mod, stack))
		}), def.ParamTypes(), def.ResultTypes()).Export(name)
	}
	_, err = b.Instantiate(ctx)
	return err
}

// fdParams lists which parameters of a WASI function are descriptors.
func fdParams(name string) []int {
	switch name {
	case "path_symlink":
		return []int{2}
	case "path_link":
		return []int{0, 4}
	case "path_rename":
		return []int{0, 3}
	}
	if strings.HasPrefix(name, "fd_") || strings.HasPrefix(name, "path_") {
		return []int{0}
	}
	return nil
}

func (h *wasiHost) lookup(fd uint64) *fdEntry {
	if i := int32(fd); i >= 0 && int(i) < len(h.fds) {
		return h.fds[i]
	}
	return nil
}

func (h *wasiHost) alloc(e *fdEntry) uint32 {
	for i, x := range h.fds {
		if x == nil {
			h.fds[i] = e
			return uint32(i)
		}
	}
	h.fds = append(h.fds, e)
	return uint32(len(h.fds) - 1)
}

// fdCall translates guest descriptors to wazero's and delegates, or serves a socket itself.
func (h *wasiHost) fdCall(name string, params []int) wasiFunc {
	stock := h.stock[name]
	return func(ctx context.Context, mod api.Module, stack []uint64) uint16 {
		guestFD := stack[0]
		for _, i := range params {
			e := h.lookup(stack[i])
			if e == nil {
				return errnoBadf
			}
			if e.sock != nil {
				return h.socketFdCall(name, e, guestFD, mod, stack)
			}
			stack[i] = uint64(uint32(e.wazero))
		}
		var result uint32 // path_open's result.fd pointer
		if name == "path_open" {
			result = uint32(stack[8])
		}
		stock.Call(ctx, mod, stack)
		errno := uint16(stack[0])
		if errno != errnoSuccess {
			return errno
		}
		switch name {
		case "fd_close":
			h.fds[int32(guestFD)] = nil
		case "path_open":
			mem := mod.Memory()
			w, _ := mem.ReadUint32Le(result)
			mem.WriteUint32Le(result, h.alloc(&fdEntry{wazero: int32(w), stdio: -1}))
		}
		return errnoSuccess
	}
}

func (h *wasiHost) closeEntry(ctx context.Context, mod api.Module, e *fdEntry) uint16 {
	if e.sock != nil {
		_ = unix.Close(e.sock.fd) // the descriptor is gone even when close reports an error
		return errnoSuccess
	}
	stack := []uint64{uint64(uint32(e.wazero))}
	h.stock["fd_close"].Call(ctx, mod, stack)
	return uint16(stack[0])
}

// fdRenumber moves `from` onto the open descriptor `to`, closing what `to` was.
func (h *wasiHost) fdRenumber(ctx context.Context, mod api.Module, stack []uint64) uint16 {
	from, to := h.lookup(stack[0]), h.lookup(stack[1])
	if from == nil || to == nil {
		return errnoBadf
	}
	if from == to {
		return errnoSuccess
	}
	if errno := h.closeEntry(ctx, mod, to); errno != errnoSuccess {
		return errno
	}
	h.fds[int32(stack[1])], h.fds[int32(stack[0])] = from, nil
	return errnoSuccess
}

// socketFdCall serves the fd_* functions a socket supports.
func (h *wasiHost) socketFdCall(name string, e *fdEntry, guestFD uint64, mod api.Module, stack []uint64) uint16 {
	s, mem := e.sock, mod.Memory()
	switch name {
	case "fd_read":
		return s.transfer(mem, uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), unix.POLLIN, unix.Readv)
	case "fd_write":
		return s.transfer(mem, uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), unix.POLLOUT, unix.Writev)
	case "fd_close":
		h.fds[int32(guestFD)] = nil
		_ = unix.Close(s.fd)
		return errnoSuccess
	case "fd_fdstat_get":
		buf, ok := mem.Read(uint32(stack[1]), 24)
		if !ok {
			return errnoFault
		}
		clear(buf)
		buf[0] = filetypeSocket
		if s.nonblock {
			le.PutUint16(buf[2:], fdflagNonblock)
		}
		le.PutUint64(buf[8:], socketRights)
		return errnoSuccess
	case "fd_fdstat_set_flags":
		s.nonblock = stack[1]&fdflagNonblock != 0 // the only flag that means anything for a socket
		return errnoSuccess
	case "fd_filestat_get":
		buf, ok := mem.Read(uint32(stack[1]), 64)
		if !ok {
			return errnoFault
		}
		clear(buf)
		buf[16] = filetypeSocket
		return errnoSuccess
	case "fd_prestat_get":
		// Succeed with a preopen type that is not "dir" (0): Go and wasi-libc both skip it and go
		// on scanning to the "/" preopen behind it, where EBADF would end their scan and ENOTDIR
		// would make wasi-libc abort.
		if !mem.WriteUint64Le(uint32(stack[1]), 1) {
			return errnoFault
		}
		return errnoSuccess
	case "fd_seek", "fd_tell", "fd_pread", "fd_pwrite":
		return errnoSpipe
	case "fd_prestat_dir_name":
		return errnoBadf
	}
	if strings.HasPrefix(name, "path_") || name == "fd_readdir" {
		return errnoNotdir
	}
	return errnoNotsup
}

// sockCall serves sock_accept, sock_recv, sock_send and sock_shutdown.
func (h *wasiHost) sockCall(name string) wasiFunc {
	return func(_ context.Context, mod api.Module, stack []uint64) uint16 {
		e := h.lookup(stack[0])
		if e == nil {
			return errnoBadf
		}
		s, mem := e.sock, mod.Memory()
		if s == nil {
			return errnoNotsock
		}
		switch name {
		case "sock_accept":
			if !s.listener {
				return errnoInval
			}
			for {
				fd, _, err := unix.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if err == nil {
					// Go's own net package sets TCP_NODELAY on every connection; do the same.
					_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					c := &socket{fd: fd, nonblock: stack[1]&fdflagNonblock != 0}
					if !mem.WriteUint32Le(uint32(stack[2]), h.alloc(&fdEntry{sock: c, stdio: -1})) {
						return errnoFault
					}
					return errnoSuccess
				}
				if errno := s.retry(err, unix.POLLIN); errno != errnoSuccess {
					return errno
				}
			}
		case "sock_recv": // fd, ri_data, ri_data_len, ri_flags, result.ro_datalen, result.ro_flags
			if !mem.WriteUint16Le(uint32(stack[5]), 0) {
				return errnoFault
			}
			switch stack[3] {
			case 0, 2: // WAITALL is a hint, as in wazero
				return s.transfer(mem, uint32(stack[1]), uint32(stack[2]), uint32(stack[4]), unix.POLLIN, unix.Readv)
			case 1: // PEEK
				return s.transfer(mem, uint32(stack[1]), uint32(stack[2]), uint32(stack[4]), unix.POLLIN, peek)
			}
			return errnoNotsup
		case "sock_send": // fd, si_data, si_data_len, si_flags, result.so_datalen
			if stack[3] != 0 {
				return errnoNotsup
			}
			return s.transfer(mem, uint32(stack[1]), uint32(stack[2]), uint32(stack[4]), unix.POLLOUT, unix.Writev)
		case "sock_shutdown":
			how, ok := map[uint64]int{1: unix.SHUT_RD, 2: unix.SHUT_WR, 3: unix.SHUT_RDWR}[stack[1]]
			if !ok {
				return errnoInval
			}
			if err := unix.Shutdown(s.fd, how); err != nil {
				return wasiErrno(err)
			}
			return errnoSuccess
		}
		return errnoNotsup
	}
}

func peek(fd int, bufs [][]byte) (int, error) {
	for _, b := range bufs {
		if len(b) > 0 {
			n, _, err := unix.Recvfrom(fd, b, unix.MSG_PEEK)
			return n, err
		}
	}
	return 0, nil
}

// transfer moves bytes between the socket and the guest's iovec array, waiting first when the
// guest asked for a blocking socket.
func (s *socket) transfer(mem api.Memory, iovs, iovsLen, result uint32, events int16, io func(int, [][]byte) (int, error)) uint16 {
	if iovsLen > 1024 { // IOV_MAX
		return errnoInval
	}
	bufs := make([][]byte, iovsLen)
	for i := range bufs {
		ptr, ok1 := mem.ReadUint32Le(iovs + 8*uint32(i))
		n, ok2 := mem.ReadUint32Le(iovs + 8*uint32(i) + 4)
		b, ok3 := mem.Read(ptr, n)
		if !ok1 || !ok2 || !ok3 {
			return errnoFault
		}
		bufs[i] = b
	}
	for {
		n, err := io(s.fd, bufs)
		if err == nil {
			if !mem.WriteUint32Le(result, uint32(n)) {
				return errnoFault
			}
			return errnoSuccess
		}
		if errno := s.retry(err, events); errno != errnoSuccess {
			return errno
		}
	}
}

// retry returns success when the failed call should simply be made again.
func (s *socket) retry(err error, events int16) uint16 {
	switch {
	case errors.Is(err, unix.EINTR):
		return errnoSuccess
	case errors.Is(err, unix.EAGAIN) && !s.nonblock:
		if err := ppoll([]unix.PollFd{{Fd: int32(s.fd), Events: events}}, nil); err != nil {
			return wasiErrno(err)
		}
		return errnoSuccess
	}
	return wasiErrno(err)
}

// ppoll waits for fds until the deadline (nil: forever), restarting after signals (the Go
// runtime's own preemption signals interrupt it often).
func ppoll(fds []unix.PollFd, deadline *time.Time) error {
	for {
		var ts *unix.Timespec
		if deadline != nil {
			t := unix.NsecToTimespec(int64(max(time.Until(*deadline), 0)))
			ts = &t
		}
		_, err := unix.Ppoll(fds, ts, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// pollOneoff waits, really blocking, until a subscription is ready or the earliest clock expires.
// Socket and stdio subscriptions wait in ppoll(2); other files are always ready, as in poll(2).
func (h *wasiHost) pollOneoff(_ context.Context, mod api.Module, stack []uint64) uint16 {
	in, out, n, resultN := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if n == 0 {
		return errnoInval
	}
	mem := mod.Memory()
	subs, ok1 := mem.Read(in, n*48)
	events, ok2 := mem.Read(out, n*32)
	if !ok1 || !ok2 {
		return errnoFault
	}
	type pending struct {
		sub      []byte
		poll     int // index into fds, or -1
		deadline time.Time
		errno    uint16
	}
	var (
		waits    []pending
		fds      []unix.PollFd
		deadline *time.Time
		now      = time.Now()
		ready    bool // something is ready already: just look, don't wait
	)
	for i := range n {
		sub := subs[i*48 : i*48+48]
		p := pending{sub: sub, poll: -1}
		switch sub[8] {
		case eventClock: // id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40
			t := int64(le.Uint64(sub[24:]))
			switch id, abs := le.Uint32(sub[16:]), le.Uint16(sub[40:])&1 != 0; {
			case !abs:
				p.deadline = now.Add(time.Duration(t))
			case id == 0: // realtime
				p.deadline = time.Unix(0, t)
			case id == 1: // monotonic, as nanotime reports it
				p.deadline = h.start.Add(time.Duration(t))
			default:
				p.errno, ready = errnoNotsup, true
			}
			if p.errno == errnoSuccess && (deadline == nil || p.deadline.Before(*deadline)) {
				deadline = &p.deadline
			}
		case eventFdRead, eventFdWrite:
			want := int16(unix.POLLIN)
			if sub[8] == eventFdWrite {
				want = unix.POLLOUT
			}
			switch e := h.lookup(uint64(le.Uint32(sub[16:]))); {
			case e == nil:
				p.errno, ready = errnoBadf, true
			case e.sock != nil:
				p.poll = len(fds)
				fds = append(fds, unix.PollFd{Fd: int32(e.sock.fd), Events: want})
			case e.stdio >= 0:
				p.poll = len(fds)
				fds = append(fds, unix.PollFd{Fd: int32(e.stdio), Events: want})
			default:
				ready = true
			}
		default:
			return errnoInval
		}
		waits = append(waits, p)
	}
	if ready {
		deadline = &now
	}
	if err := ppoll(fds, deadline); err != nil {
		return wasiErrno(err)
	}
	now = time.Now()
	nevents := uint32(0)
	for _, p := range waits {
		var hangup bool
		switch {
		case p.sub[8] == eventClock:
			if p.errno == errnoSuccess && p.deadline.After(now) {
				continue
			}
		case p.poll >= 0:
			re := fds[p.poll].Revents
			if re == 0 {
				continue
			}
			if re&unix.POLLNVAL != 0 {
				p.errno = errnoBadf
			}
			hangup = re&unix.POLLHUP != 0
		}
		ev := events[nevents*32 : nevents*32+32]
		clear(ev)
		copy(ev, p.sub[:8]) // userdata
		le.PutUint16(ev[8:], p.errno)
		ev[10] = p.sub[8]
		if hangup {
			le.PutUint16(ev[24:], 1) // fd_readwrite.flags: FD_READWRITE_HANGUP
		}
		nevents++
	}
	if !mem.WriteUint32Le(resultN, nevents) {
		return errnoFault
	}
	return errnoSuccess
}
