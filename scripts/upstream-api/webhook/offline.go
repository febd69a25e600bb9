package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// convertStdin runs one ConversionReview through the /convert handler
// registered on srv, without the kube-apiserver in between: tests compare what
// the kube-apiserver serves with this direct call of upstream's conversion.
func convertStdin(srv webhook.Server, desired string) int {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var objects []json.RawMessage
	if err := json.Unmarshal(in, &objects); err != nil {
		fmt.Fprintf(os.Stderr, "stdin must be a JSON array of objects: %v\n", err)
		return 2
	}
	req := &apiextensionsv1.ConversionRequest{UID: types.UID("offline"), DesiredAPIVersion: desired}
	for _, o := range objects {
		req.Objects = append(req.Objects, runtime.RawExtension{Raw: o})
	}
	review := apiextensionsv1.ConversionReview{Request: req}
	review.APIVersion, review.Kind = "apiextensions.k8s.io/v1", "ConversionReview"
	body, _ := json.Marshal(review)
	rec := httptest.NewRecorder()
	handler, _ := srv.WebhookMux().Handler(&http.Request{Method: http.MethodPost, URL: mustURL("/convert")})
	r := httptest.NewRequest(http.MethodPost, "/convert", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	handler.ServeHTTP(rec, r)
	var out apiextensionsv1.ConversionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		fmt.Fprintf(os.Stderr, "conversion handler answered %d: %s\n", rec.Code, rec.Body.String())
		return 1
	}
	if out.Response.Result.Status != "Success" {
		fmt.Fprintf(os.Stderr, "conversion failed: %s\n", out.Response.Result.Message)
		return 1
	}
	converted := make([]json.RawMessage, 0, len(out.Response.ConvertedObjects))
	for _, o := range out.Response.ConvertedObjects {
		converted = append(converted, o.Raw)
	}
	b, _ := json.Marshal(converted)
	_, _ = os.Stdout.Write(b)
	return 0
}
