package profiles

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/geodemesh/geode/consistency"
)

// The gRPC service, written by hand (no protoc): messages are protobuf well-known types.
//
//	Get(google.protobuf.StringValue id) returns (google.protobuf.Struct profile)
//	Put(google.protobuf.Struct {id,name,email}) returns (google.protobuf.Struct profile)
//	Watch(google.protobuf.StringValue id_prefix) returns (stream google.protobuf.Struct profile)
//
// A profile Struct has string fields "id", "name", "email", "version".
const (
	GRPCService = "geode.examples.profiles.v1.Profiles"
	// Full method names, as in the HTTP/2 :path.
	MethodGet   = "/" + GRPCService + "/Get"
	MethodPut   = "/" + GRPCService + "/Put"
	MethodWatch = "/" + GRPCService + "/Watch"
)

// grpcHandler is the HandlerType of the service descriptor.
type grpcHandler interface {
	get(context.Context, *wrapperspb.StringValue) (*structpb.Struct, error)
	put(context.Context, *structpb.Struct) (*structpb.Struct, error)
	watch(*wrapperspb.StringValue, grpc.ServerStream) error
}

// watchStreamDesc describes Watch, for the server and for Client.
func watchStreamDesc() grpc.StreamDesc {
	return grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}
}

// newServiceDesc is what protoc-gen-go-grpc would generate for the service.
func newServiceDesc() *grpc.ServiceDesc {
	watch := watchStreamDesc()
	watch.Handler = func(srv any, stream grpc.ServerStream) error {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		return srv.(grpcHandler).watch(in, stream)
	}
	return &grpc.ServiceDesc{
		ServiceName: GRPCService,
		HandlerType: (*grpcHandler)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Get", Handler: unary(MethodGet, new(wrapperspb.StringValue), grpcHandler.get)},
			{MethodName: "Put", Handler: unary(MethodPut, new(structpb.Struct), grpcHandler.put)},
		},
		Streams:  []grpc.StreamDesc{watch},
		Metadata: "geode/examples/profiles/v1/profiles.proto",
	}
}

// unary adapts a typed method to grpc.MethodDesc.Handler; zero only gives Req's type.
func unary[Req proto.Message](fullMethod string, zero Req, call func(grpcHandler, context.Context, Req) (*structpb.Struct, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := zero.ProtoReflect().New().Interface().(Req)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := srv.(grpcHandler)
		if ic == nil {
			return call(h, ctx, in)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}
		return ic(ctx, in, info, func(ctx context.Context, req any) (any, error) {
			return call(h, ctx, req.(Req))
		})
	}
}

// grpcService implements the service on a Store.
type grpcService struct{ s *Store }

func (g grpcService) get(ctx context.Context, in *wrapperspb.StringValue) (*structpb.Struct, error) {
	wm := g.s.Watermark()
	_ = grpc.SetHeader(ctx, g.header(wm))
	p, ok := g.s.Get(in.GetValue())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "user %q not found in region %s", in.GetValue(), g.s.cfg.Region)
	}
	return toStruct(p), nil
}

func (g grpcService) put(ctx context.Context, in *structpb.Struct) (*structpb.Struct, error) {
	f := in.GetFields()
	id := f["id"].GetStringValue()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, `field "id": must be a non-empty string`)
	}
	p := g.s.Put(id, f["name"].GetStringValue(), f["email"].GetStringValue())
	md := g.header(g.s.Watermark())
	md.Set(consistency.HeaderVersion, p.Version.String())
	_ = grpc.SetHeader(ctx, md)
	return toStruct(p), nil
}

func (g grpcService) watch(in *wrapperspb.StringValue, stream grpc.ServerStream) error {
	updates, cancel := g.s.watch(in.GetValue())
	defer cancel()
	// Subscribed: send headers now so the client knows later writes will be streamed.
	if err := stream.SendHeader(g.header(g.s.Watermark())); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case p, ok := <-updates:
			if !ok {
				return status.Errorf(codes.ResourceExhausted, "watch: fell more than %d updates behind", watchBuffer)
			}
			if err := stream.SendMsg(toStruct(p)); err != nil {
				return err
			}
		}
	}
}

// header is the header metadata of a call. geode-region is not in it: Handler sets it on
// every response, gRPC included.
func (g grpcService) header(wm consistency.Watermark) metadata.MD {
	md := metadata.Pairs(consistency.HeaderWatermark, wm.String())
	if lag := g.s.ReplicaLag(); len(lag) > 0 {
		md.Set(consistency.HeaderReplicaLag, lag.String())
	}
	return md
}

func toStruct(p Profile) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"id":      structpb.NewStringValue(p.ID),
		"name":    structpb.NewStringValue(p.Name),
		"email":   structpb.NewStringValue(p.Email),
		"version": structpb.NewStringValue(p.Version.String()),
	}}
}

func fromStruct(st *structpb.Struct) (Profile, error) {
	f := st.GetFields()
	p := Profile{ID: f["id"].GetStringValue(), Name: f["name"].GetStringValue(), Email: f["email"].GetStringValue()}
	if vs := f["version"].GetStringValue(); vs != "" {
		v, err := consistency.ParseVersion(vs)
		if err != nil {
			return Profile{}, fmt.Errorf("profiles: response: %w", err)
		}
		p.Version = v
	}
	return p, nil
}

// Client is a typed client of the Profiles gRPC service.
type Client struct{ cc grpc.ClientConnInterface }

// NewClient returns a Client calling through cc (e.g. a *grpc.ClientConn to a sidecar).
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Get returns the profile stored under id; an unknown id is a codes.NotFound error.
func (c *Client) Get(ctx context.Context, id string, opts ...grpc.CallOption) (Profile, error) {
	out := new(structpb.Struct)
	if err := c.cc.Invoke(ctx, MethodGet, wrapperspb.String(id), out, opts...); err != nil {
		return Profile{}, err
	}
	return fromStruct(out)
}

// Put writes a profile and returns it with the write's version. Pass grpc.Header to read
// the geode-version and geode-watermark header metadata.
func (c *Client) Put(ctx context.Context, id, name, email string, opts ...grpc.CallOption) (Profile, error) {
	in := toStruct(Profile{ID: id, Name: name, Email: email})
	delete(in.Fields, "version")
	out := new(structpb.Struct)
	if err := c.cc.Invoke(ctx, MethodPut, in, out, opts...); err != nil {
		return Profile{}, err
	}
	return fromStruct(out)
}

// Watch streams every write applied to the serving replica after the call, for ids starting
// with prefix ("" for all). It returns once the server has subscribed; cancel ctx to end it.
func (c *Client) Watch(ctx context.Context, prefix string, opts ...grpc.CallOption) (*WatchStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	desc := watchStreamDesc()
	stream, err := c.cc.NewStream(ctx, &desc, MethodWatch, opts...)
	if err == nil {
		err = stream.SendMsg(wrapperspb.String(prefix))
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err == nil {
		_, err = stream.Header()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &WatchStream{stream: stream, cancel: cancel}, nil
}

// WatchStream is an open Watch call.
type WatchStream struct {
	stream grpc.ClientStream
	cancel context.CancelFunc
}

// Close ends the call. Cancelling the ctx given to Watch does the same.
func (w *WatchStream) Close() { w.cancel() }

// Recv blocks for the next update. It returns the call's status error when the stream ends.
func (w *WatchStream) Recv() (Profile, error) {
	out := new(structpb.Struct)
	if err := w.stream.RecvMsg(out); err != nil {
		return Profile{}, err
	}
	return fromStruct(out)
}
