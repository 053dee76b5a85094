/* Empty: glibc picks its 32-bit stubs for -target bpf; BPF programs use none of them. */
