module github.com/gong-webhook-operator/hack/pause

go 1.26.0
