package client

import (
	"context"

	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/model"
)

// ImageTask is an image and the task changing it.
type ImageTask struct {
	Image model.Image  `json:"image"`
	Task  api.TaskView `json:"task"`
}

// ListImages reads one page of images.
func (c *Client) ListImages(ctx context.Context, o ListOptions) (Page[model.Image], error) {
	var p Page[model.Image]
	err := c.call(ctx, "listImages", nil, pageQuery(o), nil, &p)
	return p, err
}

// GetImage reads an image.
func (c *Client) GetImage(ctx context.Context, id string) (model.Image, error) {
	var out model.Image
	err := c.call(ctx, "getImage", []string{id}, nil, nil, &out)
	return out, err
}

// CreateImage registers an image (admin); with b.ClusterID its import
// starts at once (the image's TaskID).
func (c *Client) CreateImage(ctx context.Context, b api.ImageBody) (model.Image, error) {
	var out model.Image
	err := c.call(ctx, "createImage", nil, nil, b, &out)
	return out, err
}

// ImportImage starts the import of an image into the storage of a
// cluster's nodes or of one node (admin).
func (c *Client) ImportImage(ctx context.Context, id string, b api.ImageImportBody) (model.Image, api.TaskView, error) {
	var out ImageTask
	err := c.call(ctx, "importImage", []string{id}, nil, b, &out)
	return out.Image, out.Task, err
}

// DeleteImage starts the deletion of an image and its imported volumes (admin).
func (c *Client) DeleteImage(ctx context.Context, id string) (api.TaskView, error) {
	var out ImageTask
	err := c.call(ctx, "deleteImage", []string{id}, nil, nil, &out)
	return out.Task, err
}
